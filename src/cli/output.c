/* What the CLI prints on stdout: JSON, fields and tables (output.h). */
#include "cli/output.h"

#include "cli/cli.h"
#include "cli/escape.h"
#include "cli/table.h"

#include <stdio.h>
#include <stdlib.h>

void cli_print_json(const json_t *obj)
{
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text)
        puts(text);
    free(text);
}

void cli_print_json_text(const json_t *obj)
{
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text) {
        escape_puts(stdout, text);
        putchar('\n');
    }
    free(text);
}

void cli_print_fields(const json_t *obj, const char *const *keys, size_t nkeys, int width)
{
    char buf[64];
    for (size_t i = 0; i < nkeys; i++) {
        printf("%-*s ", (int)width, keys[i]);
        escape_puts(stdout, cli_field(obj, keys[i], buf));
        putchar('\n');
    }
}

const char *cli_field(const json_t *obj, const char *key, char *buf)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "yes" : "no";
    return "-";
}

void cli_print_table(const json_t *rows, const struct cli_column *cols, size_t ncols)
{
    const char *cells[TABLE_MAX_COLS];
    char f[TABLE_MAX_COLS][64]; /* one buffer a column: cli_field may write into it */
    char *dumps[TABLE_MAX_COLS] = {0};
    struct table t;
    if (ncols > TABLE_MAX_COLS)
        return;
    for (size_t i = 0; i < ncols; i++)
        cells[i] = cols[i].header;
    table_start(&t, ncols, cells);
    size_t n;
    json_t *row;
    json_array_foreach(rows, n, row)
    {
        for (size_t i = 0; i < ncols; i++) {
            json_t *v = json_object_get(row, cols[i].key);
            /* lists and objects (a worker's runs, its metadata) as compact JSON */
            dumps[i] = json_is_array(v) || json_is_object(v)
                           ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)
                           : NULL;
            cells[i] = dumps[i] ? dumps[i] : cli_field(row, cols[i].key, f[i]);
        }
        table_add(&t, cells);
        for (size_t i = 0; i < ncols; i++) {
            free(dumps[i]);
            dumps[i] = NULL;
        }
    }
    table_print(&t, stdout);
    table_free(&t);
}

void cli_print_list(int json, const json_t *resp, const char *key, const struct cli_column *cols,
                    size_t ncols)
{
    if (json)
        cli_print_json(resp);
    else
        cli_print_table(json_object_get(resp, key), cols, ncols);
}

int cli_print_secret(int json, const json_t *resp, const char *key)
{
    const json_t *v = json_object_get(resp, key);
    if (json) {
        cli_print_json(resp);
        return 0;
    }
    if (!json_is_string(v)) {
        fprintf(stderr, "davit: the server's answer has no %s\n", key);
        return EXIT_API;
    }
    escape_puts(stdout, json_string_value(v));
    putchar('\n');
    return 0;
}
