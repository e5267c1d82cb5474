/* `davit server migrate`: applies the schema's migrations that the database lacks, and says
 * from which version to which. */
#include "server/migrate.h"

#include "server/config.h"
#include "server/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] = "usage: davit server migrate (--data-dir DIR | --database URL)\n"
                            "  --data-dir DIR    the SQLite database of a server's data directory\n"
                            "  --database URL    PostgreSQL (postgres://USER:PASSWORD@HOST/DB);\n"
                            "                    also DAVIT_DATABASE_URL\n";

static const struct option opts[] = {
    {"data-dir", required_argument, 0, 'd'},
    {"database", required_argument, 0, 'Q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int server_migrate_main(int argc, char **argv)
{
    /* Large (paths, URL): static, as server_main's. */
    static struct server_config c;
    memset(&c, 0, sizeof(c));
    const char *database = NULL;
    char err[1024] = "";
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            snprintf(c.data_dir, sizeof(c.data_dir), "%s", optarg);
            break;
        case 'Q':
            database = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "davit server migrate: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (config_database(&c, database, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit server migrate: %s\n", err);
        return 2;
    }
    char where[PATH_MAX + 16], label[CONFIG_DATABASE_MAX];
    if (c.database[0]) {
        snprintf(where, sizeof(where), "%s", c.database);
        config_database_label(c.database, label, sizeof(label));
    } else if (c.data_dir[0]) {
        /* The file `davit server` opens; the directory must be one already. */
        snprintf(where, sizeof(where), "%s/davit.db", c.data_dir);
        snprintf(label, sizeof(label), "%s", where);
    } else {
        fprintf(stderr, "davit server migrate: --data-dir or --database is required\n");
        return 2;
    }
    int from = 0;
    if (store_migrate(where, &from, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit server migrate: %s\n", err);
        return 1;
    }
    if (from == STORE_SCHEMA_VERSION)
        printf("%s: schema version %d, nothing to do\n", label, from);
    else
        printf("%s: schema migrated from version %d to %d\n", label, from, STORE_SCHEMA_VERSION);
    return 0;
}
