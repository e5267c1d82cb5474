/*
 * table: prints rows of text as aligned columns, for the CLI's lists.
 *
 * Owns copies of every cell until table_free. Cells are capped at
 * TABLE_CELL_MAX bytes each, newlines and tabs in them are shown as spaces,
 * and other control characters escaped (escape.h).
 */
#ifndef DAVIT_CLI_TABLE_H
#define DAVIT_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 12
/* A cell's bytes shown: a long reason or metadata must not push the other
 * columns off the screen. */
#define TABLE_CELL_MAX 200

struct table {
    size_t ncols, nrows;
    char **cells; /* nrows * ncols, the header row first */
    size_t width[TABLE_MAX_COLS];
};

/* Starts a table with ncols headers. -1 on OOM or too many columns. */
int table_start(struct table *t, size_t ncols, const char *const *headers);
/* Adds a row of ncols strings (NULL shown as "-"). -1 on OOM. */
int table_add(struct table *t, const char *const *cells);
/* Prints the table. Never fails. */
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

#endif
