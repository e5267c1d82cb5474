/*
 * background: the server's two background threads (docs/server.md).
 *
 * - The reaper: lease expiry. Every 100 ms it resumes waiters whose deadline
 *   passed; every 500 ms it requeues the runs of launchers whose lease ended
 *   and marks lost the started runs of those that did not come back.
 * - The sweeper: retention. Every few seconds, and at once when kicked, it
 *   deletes ended runs older than --retention-max-age, trims logs over
 *   --retention-max-log-bytes, frees the chunks they leave and gives free
 *   pages back to the filesystem.
 *
 * Each owns its thread. They read srv->cfg and call srv->store and
 * srv->disp, which must outlive them.
 */
#ifndef DAVIT_SERVER_BACKGROUND_H
#define DAVIT_SERVER_BACKGROUND_H

struct server;
struct bgthread;

/* Start a thread; NULL when there is no thread or no memory for it. */
struct bgthread *reaper_start(struct server *srv);
struct bgthread *sweeper_start(struct server *srv);
/* Stops the thread at its next check (between two sweep batches), joins
 * and frees it. NULL is fine. Stop the sweeper after the HTTP threads:
 * they may kick it. */
void bg_stop(struct bgthread *t);

/* Asks the sweep (srv->sweeper) to run now, e.g. to free a deleted run's
 * log. Never blocks on the sweep; a NULL srv->sweeper is fine. */
void sweep_kick(struct server *srv);

/* Asks for the WAL to be cut (a run's secrets were deleted): within
 * SECRETS_CHECKPOINT_EVERY_MS (1 s), many kicks making one checkpoint. Never
 * blocks; a NULL srv->sweeper is fine. */
void sweep_kick_secrets(struct server *srv);

#endif
