/*
 * output: what the CLI prints on stdout for a command's answer: the API's
 * JSON unchanged (--json), single fields, and aligned tables. Owns nothing
 * beyond one call; never fails (an allocation failure prints less).
 * Everything but --json's JSON is escaped for the terminal (escape.h).
 */
#ifndef DAVIT_CLI_OUTPUT_H
#define DAVIT_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>

/* One column of cli_print_table: its header and the key of its field. */
struct cli_column {
    const char *header, *key;
};

/* Prints rows, an array of objects, as a table on stdout: a column for each
 * of cols (at most TABLE_MAX_COLS), fields as cli_field shows them. */
void cli_print_table(const json_t *rows, const struct cli_column *cols, size_t ncols);

/* With json (--json) the whole answer resp; else its rows (the array at key) as a table. */
void cli_print_list(int json, const json_t *resp, const char *key, const struct cli_column *cols,
                    size_t ncols);

/*
 * For an answer with a secret shown once (a pool's or API token): with json the whole answer,
 * else only the string at key, on one line, escaped, so that `> file` keeps just it. 0, or
 * EXIT_API after one line on stderr when the answer has no such string.
 */
int cli_print_secret(int json, const json_t *resp, const char *key);

/* Prints obj as indented JSON on stdout. */
void cli_print_json(const json_t *obj);

/* Prints obj as indented JSON on stdout, escaped for the terminal: for text
 * output (the spec in `run show`), where jansson leaves DEL and C1 raw. */
void cli_print_json_text(const json_t *obj);

/* Prints "KEY VALUE" lines on stdout, one for each of keys, the keys padded
 * to width, the values as cli_field shows them, escaped. */
void cli_print_fields(const json_t *obj, const char *const *keys, size_t nkeys, int width);

/* The string value of key in obj, "-" when absent or null; integers are
 * formatted into buf (64 bytes), so the result may point into buf: give
 * each field used in one call its own buf. Never fails. */
const char *cli_field(const json_t *obj, const char *key, char *buf);

#endif
