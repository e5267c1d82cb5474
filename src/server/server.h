/*
 * server: `davit server`, the control plane (docs/server.md).
 *
 * server_main parses the options, initialises the data directory on first
 * start, serves the API until SIGINT or SIGTERM and returns the exit code.
 * self_path is the path of the running executable, used to find the
 * davit-worker and davit-launcher binaries published on first start.
 */
#ifndef DAVIT_SERVER_SERVER_H
#define DAVIT_SERVER_SERVER_H

int server_main(int argc, char **argv, const char *self_path);

#endif
