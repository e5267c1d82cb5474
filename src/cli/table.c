#include "cli/table.h"

#include "cli/escape.h"

#include <stdlib.h>
#include <string.h>

int table_add(struct table *t, const char *const *cells)
{
    char **all = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
    if (!all)
        return -1;
    t->cells = all;
    char **row = all + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        char *raw = strndup(cells[i] ? cells[i] : "-", TABLE_CELL_MAX);
        if (raw)
            for (char *p = raw; *p; p++)
                if (*p == '\n' || *p == '\t')
                    *p = ' ';
        row[i] = raw ? escape_dup(raw, strlen(raw)) : NULL;
        free(raw);
        if (!row[i]) {
            for (size_t j = 0; j < i; j++)
                free(row[j]);
            return -1;
        }
        size_t w = strlen(row[i]);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return 0;
}

int table_start(struct table *t, size_t ncols, const char *const *headers)
{
    memset(t, 0, sizeof(*t));
    if (ncols > TABLE_MAX_COLS)
        return -1;
    t->ncols = ncols;
    return table_add(t, headers);
}

void table_print(const struct table *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                fprintf(out, "%s\n", cell);
            else
                fprintf(out, "%-*s  ", (int)t->width[c], cell);
        }
    }
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
