/*
 * migrate: `davit server migrate`, the schema's migrations alone, for operators who apply them
 * by hand before starting servers (docs/server.md, "Schema versions").
 */
#ifndef DAVIT_SERVER_MIGRATE_H
#define DAVIT_SERVER_MIGRATE_H

/* argv[0] is "migrate". Prints what it did; the exit code: 0 done, 1 failed, 2 bad usage. */
int server_migrate_main(int argc, char **argv);

#endif
