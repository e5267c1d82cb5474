/*
 * state: struct server, the state of one running server, which every
 * handler reaches as r->srv. server.c fills it at start and frees it at
 * exit; while requests run it is read-only except through the thread-safe
 * objects it points to (store, dispatch, metrics, the background threads).
 */
#ifndef DAVIT_SERVER_STATE_H
#define DAVIT_SERVER_STATE_H

#include <limits.h>
#include <microhttpd.h>

#include "server/config.h"
#include "server/dispatch.h"
#include "server/store.h"

struct bgthread;
struct challenges;
struct fanout;
struct log_gate;
struct http_deadlines;
struct keycache;
struct metrics;
struct watch;

struct server {
    struct server_config cfg;
    struct store *store;
    struct dispatch *disp;
    struct fanout *fanout; /* wake-ups here and on the other servers (fanout.c) */
    struct watch *watch;   /* the UI's change feed (watch.c) */
    struct MHD_Daemon *mhd;
    struct log_gate *mhd_log;             /* http.c: libmicrohttpd's messages, rate-limited */
    struct http_deadlines *mhd_deadlines; /* http.c: request headers' absolute deadline */
    struct metrics *metrics;              /* metrics.c */
    struct challenges *challenges;        /* registration challenges (challenges.c) */
    struct keycache *keys;                /* pools' decoded public keys (keycache.c) */
    char *release_key_pem;                /* Ed25519 private key */
    char *release_pub_pem;
    char admin_hash[72];
    char releases_dir[PATH_MAX + 16];
    struct bgthread *reaper;  /* lease expiry (background.c) */
    struct bgthread *sweeper; /* retention and space reclaim (background.c) */
};

#endif
