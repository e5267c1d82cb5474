/*
 * outcome: the ways a run can end, their names on the wire, and the exit
 * codes every davit program uses for them.
 *
 * The exit codes are shared by davit-worker, davit-launcher exec and
 * davit run submit --follow, so that a script gets the same answer whichever
 * program it called. Pure functions, no state.
 */
#ifndef DAVIT_COMMON_OUTCOME_H
#define DAVIT_COMMON_OUTCOME_H

enum outcome {
    OUTCOME_FINISHED,
    OUTCOME_FAILED,
    OUTCOME_CANCELED,
    OUTCOME_TIMED_OUT,
    OUTCOME_LOST,
};

/* Exit codes that are not outcomes. */
#define EXIT_USAGE    2  /* bad flags, bad run directory, bad spec or configuration */
#define EXIT_INTERNAL 70 /* the program itself could not go on (I/O, memory) */

/* "finished", "failed", "canceled", "timed_out", "lost". Never fails. */
const char *outcome_name(enum outcome o);

/* Returns 0 and sets *o, or -1 for an unknown name. */
int outcome_parse(const char *name, enum outcome *o);

/* 0 finished, 1 failed, 3 timed_out, 4 canceled, 5 lost. Never fails. */
int outcome_exit_code(enum outcome o);

#endif
