/*
 * davit-load: the load harness of issue 11 (bench/load/README.md). One
 * process holds N stand-in launchers, each one HTTPS keep-alive connection
 * that registers (challenge, signature with the pool key, register), then
 * long-polls and finishes whatever run it is given (events preparing,
 * running, result) like a launcher without Docker; a client submits runs
 * through the admin API and times each one from just before its submit
 * until a stand-in has read it from its poll answer.
 *
 * Threads: one loop per core (struct loop), each an epoll set driving one
 * libcurl multi handle through its socket callbacks, so that a thread holds
 * thousands of idle connections at no cost but their memory. The launchers
 * are dealt round-robin to the loops; the submitter lives in loop 0. The
 * main thread only sequences the phases and samples /proc.
 *
 * Ownership: struct load owns everything (pools, loops, launchers, the
 * per-run tables); load_net.c owns the curl handles it creates and frees
 * them in loop_free. Counters shared between threads are C11 atomics.
 */
#ifndef DAVIT_BENCH_LOAD_H
#define DAVIT_BENCH_LOAD_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "launcher/credentials.h"

struct load;
struct loop;

/* A pool the stand-ins register in: its name (for submits) and credentials. */
struct load_pool {
    char name[64];
    struct credentials cred;
    int launchers; /* how many stand-ins register in it */
};

enum conn_kind { CONN_LAUNCHER, CONN_SUBMIT };

enum launcher_step {
    ST_IDLE,      /* not started */
    ST_CHALLENGE, /* POST /launcher/challenge */
    ST_REGISTER,  /* POST /launcher/register */
    ST_POLL,      /* POST /launcher/poll, held by the server */
    ST_EVENT,     /* POST /launcher/runs/ID/events (preparing, running, result) */
    ST_LOG,       /* PUT /launcher/runs/ID/log */
    ST_BACKOFF,   /* waiting to retry after an error */
    ST_STOPPED,
};

/* One HTTP exchange at a time on one easy handle (one keep-alive connection). */
struct conn {
    enum conn_kind kind;
    struct loop *loop;
    const char *base_url; /* the server this connection talks to (load_opts) */
    CURL *easy;
    struct curl_slist *headers;
    struct dbuf body; /* request body */
    struct dbuf resp; /* answer body */
    int active;       /* added to the multi handle */
    int64_t retry_at_ms;
};

struct launcher {
    struct conn c; /* first: a struct conn * of kind CONN_LAUNCHER is a struct launcher * */
    int index;
    struct load_pool *pool;
    enum launcher_step step;
    char challenge_id[128];
    char nonce[256];
    char session[256];
    long long id;
    long long ack;
    int registered;
    int backoff_s;
    /* the run in hand */
    long long run_id;
    int run_tag; /* index in the load's run tables, -1 for a run not submitted by us */
    int event;   /* 1 preparing, 2 running, 3 log (optional), 4 result */
    enum launcher_step retry_step; /* ST_BACKOFF: the step to take again */
};

struct submitter {
    struct conn c;
    int tag; /* run index being submitted */
};

struct loop {
    struct load *load;
    int index;
    pthread_t thread;
    int epfd;
    int wakefd; /* eventfd: the main thread or another loop has news for this one */
    CURLM *multi;
    int64_t curl_deadline_ms; /* -1: no curl timer */
    struct launcher **launchers;
    int nlaunchers;
    struct submitter *subs; /* loop 0 only */
    int nsubs;
    int64_t next_submit_ms;
    int next_start;        /* launchers[] not yet started from here on (--ramp) */
    int registering;       /* started and not yet registered */
    int nbackoff;          /* launchers in ST_BACKOFF */
    unsigned seed;         /* rand_r's state for the backoff jitter: rand() is shared */
    int64_t next_retry_ms; /* the earliest of their retries, -1 when none is known */
};

struct load_opts {
    const char *url; /* https://127.0.0.1:PORT */
    /* Replicas (issue 18): the stand-ins are dealt round-robin over launcher_urls (default:
     * url alone) and the runs are submitted to submit_url (default: url). The certificate must
     * then hold for every one of them. */
    const char **launcher_urls;
    int nlauncher_urls;
    const char *submit_url;
    const char *cacert; /* the server's certificate (PEM), verified as a CA */
    char *admin_token;  /* read from a file */
    int threads;
    int source_per_address;  /* stand-ins per loopback source address; 0: all from 127.0.0.1 */
    int wait_s;              /* poll wait_s */
    int runs;                /* runs to submit */
    const char *submit_pool; /* pool name the runs go to */
    int inflight;            /* runs submitted and not finished at once; 1: one at a time */
    int gap_ms;              /* inflight 1: pause between a result and the next submit */
    int submitters;          /* parallel submit connections */
    int log_chunk;           /* ship one small log record per run */
    int ramp;                /* registrations under way at once; 0: every launcher at once */
    int register_timeout_s;
    int run_timeout_s;
    int idle_cpu_s; /* seconds over which the server's CPU is read with every stand-in parked */
    int server_pid;
    const char *metrics_counter; /* read before and after the runs, or NULL */
};

struct load {
    struct load_opts o;
    struct load_pool *pools;
    int npools;
    struct launcher *launchers;
    int nlaunchers;
    struct loop *loops;
    int submit_pool_index;

    atomic_int phase; /* 0 idle, 1 register and poll, 2 submit, 3 stop */
    atomic_int registered;
    atomic_int polling; /* stand-ins with a poll sent and not yet answered */
    atomic_int submitted;
    atomic_int finished; /* runs whose result the server accepted */
    atomic_int lost_events;
    atomic_int duplicated;
    atomic_int foreign_runs; /* runs read that we did not submit */
    atomic_int errors;       /* any non-2xx answer except the documented 429 retry */
    atomic_int retries_429;
    atomic_int transport_errors;
    atomic_int status_count[600];
    atomic_int_least64_t first_submit_ns;
    atomic_int_least64_t last_finish_ns;
    atomic_int_least64_t all_registered_ns;

    /* per submitted run, by tag */
    atomic_int_least64_t *submit_ns;
    atomic_int_least64_t *read_ns;
    atomic_int *reads;
};

int64_t load_now_ns(void);

/* Makes loop i (epoll, eventfd, multi handle), with its share of launchers. 0 or -1 (message on
 * stderr). */
int loop_init(struct load *ld, struct loop *lp, int i);
void *loop_main(void *arg);
/* Wakes a loop (the phase changed, or a run finished for the submitter). */
void loop_wake(struct loop *lp);
/* Frees what loop_init made; after the thread has been joined. */
void loop_free(struct loop *lp);

#endif
