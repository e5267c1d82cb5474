/*
 * table: prints rows of text as aligned columns, for the CLI's lists.
 *
 * Owns copies of every cell until table_free. Cells are capped at 200 bytes
 * each, and newlines in them are shown as spaces.
 */
#ifndef DAVIT_CLI_TABLE_H
#define DAVIT_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 12

struct table {
    size_t ncols, nrows;
    char **cells; /* nrows * ncols, the header row first */
    size_t width[TABLE_MAX_COLS];
};

/* Starts a table with ncols headers (the varargs). -1 on OOM. */
int table_init(struct table *t, size_t ncols, ...);
/* Adds a row of ncols strings (NULL shown as "-"). -1 on OOM. */
int table_row(struct table *t, ...);
/* Prints the table. Never fails. */
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

#endif
