/*
 * state: what a launcher keeps on disk in DAVIT_STATE_DIR, so that a
 * restarted launcher can find and adopt its runs.
 *
 *     <state>/lock             flock'ed while a launcher uses the directory
 *     <state>/launcher-id      this launcher's identity (the io.davit.launcher label)
 *     <state>/runs/<run>.json  a run: its container, spec digest, spool offset
 *     <state>/runs/<run>/      the run directory bind-mounted into the container
 *
 * Run files are replaced atomically (write, then rename), so a crash leaves
 * either the old or the new version. One launcher at a time holds the lock.
 * Owns the lock's file descriptor.
 */
#ifndef DAVIT_LAUNCHER_STATE_H
#define DAVIT_LAUNCHER_STATE_H

#include <stddef.h>
#include <stdint.h>

#define STATE_ID_MAX  64
#define STATE_KEY_LEN 32 /* SPOOL_KEY_LEN */

struct state {
    char *dir;
    int lock_fd;
    char launcher_id[33]; /* 32 hex digits */
};

struct run_state {
    char run_id[STATE_ID_MAX];
    char container[80];   /* Engine id; "" before the container exists */
    char spec_sha256[65]; /* digest of the spec, to recognise a resumed exec */
    uint64_t offset;      /* spool bytes already shipped */
    uint64_t seq;         /* seq of the last record shipped */
    int64_t started_ms;   /* wall clock at container start; 0 before */
    /* the daemon's */
    int64_t server_id;     /* the run's id on the server; 0 for exec */
    uint64_t event_seq;    /* seq of the last event sent (or about to be) */
    int64_t kill_grace_ms; /* the spec's, for an adopted run; 0 unknown */
    /* The run's result, kept once its log is shipped and before its container
     * and run directory are removed, so that a restart still reports it. */
    int has_result;
    char result_outcome[16]; /* outcome_name() */
    int result_exit;         /* -1 unknown */
    char result_reason[1200];
    /* The run's spool key (spool_mac.h), so that an adopting launcher can
     * verify the spool too. Secret: the state directory is 0700 and never
     * mounted into a container. */
    int has_key;
    unsigned char key[STATE_KEY_LEN];
};

/*
 * Creates dir (0700) if needed, takes its lock and reads or creates the
 * launcher identity. Returns 0, or -1 with err (another launcher holds the
 * lock, or an I/O error). Caller releases with state_close.
 */
int state_open(struct state *st, const char *dir, char *err, size_t errsz);
void state_close(struct state *st);

/* A fresh run id: prefix, "-", 12 random hex digits. Returns 0, -1 without randomness. */
int state_new_run_id(char *buf, size_t size, const char *prefix);

/* The run directory's path for run_id. Never fails (truncates like snprintf). */
void state_run_dir(const struct state *st, const char *run_id, char *buf, size_t size);

int state_run_save(const struct state *st, const struct run_state *rs, char *err, size_t errsz);

/* Returns 1 and fills rs, 0 when there is no state for run_id, -1 with err. */
int state_run_load(const struct state *st, const char *run_id, struct run_state *rs, char *err,
                   size_t errsz);

/* Removes the run's state file (not its directory). Missing is fine. */
int state_run_forget(const struct state *st, const char *run_id, char *err, size_t errsz);

/*
 * A small file of the launcher's own in the state directory (name without
 * "/"), written atomically / read whole (at most 64 KiB). Read returns 1 and
 * *text (caller frees), 0 when missing, -1 with err.
 */
int state_file_write(const struct state *st, const char *name, const char *text, char *err,
                     size_t errsz);
int state_file_read(const struct state *st, const char *name, char **text, char *err, size_t errsz);

/*
 * Lists the ids of runs that have a state file or a run directory, at most
 * max, and removes the temporary files a killed launcher left half-written.
 * Returns the count, or -1 with err.
 */
int state_run_list(const struct state *st, char (*ids)[STATE_ID_MAX], size_t max, char *err,
                   size_t errsz);

#endif
