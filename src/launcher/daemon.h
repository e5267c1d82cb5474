/*
 * daemon: davit-launcher with no command, the agent driven by the control
 * plane (docs/launcher.md, "The launcher daemon"; docs/protocol.md).
 *
 * The main thread registers (session.h), long-polls, acknowledges and
 * dispatches the server's messages, and handles signals. Each run is a job
 * (job.h) carried by a thread of its own; the daemon owns the jobs it
 * started, cancels them on a signal, a cycle or a token reset, and joins
 * their threads when they say they ended. At start it adopts the runs a
 * previous start with the same state directory left.
 */
#ifndef DAVIT_LAUNCHER_DAEMON_H
#define DAVIT_LAUNCHER_DAEMON_H

/* Exit codes of the daemon (docs/launcher.md). */
#define DAEMON_EXIT_STOPPED 0  /* drained (or canceled) and exited after SIGTERM/SIGINT */
#define DAEMON_EXIT_LEFT    1  /* a third signal: left at once, runs kept for adoption */
#define DAEMON_EXIT_CYCLED  75 /* the pool was cycled: replace this launcher */

/* Runs the daemon; returns the process's exit code. */
int daemon_main(void);

#endif
