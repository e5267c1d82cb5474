/*
 * api_launcher: the launchers' protocol (docs/protocol.md): challenge and
 * register, the long-poll, heartbeats, run events and log chunks. Owns no
 * state beyond the request's poll fields. h_launcher_poll may return
 * HANDLER_SUSPENDED; the others return HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_LAUNCHER_H
#define DAVIT_SERVER_API_LAUNCHER_H

struct req;

int h_launcher_challenge(struct req *r);
int h_launcher_register(struct req *r);
int h_launcher_poll(struct req *r);
int h_launcher_heartbeat(struct req *r);
int h_launcher_event(struct req *r);
int h_launcher_log(struct req *r);

#endif
