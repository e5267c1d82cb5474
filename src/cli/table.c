#include "cli/table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int add_row(struct table *t, va_list ap)
{
    char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
    if (!cells)
        return -1;
    t->cells = cells;
    char **row = cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *v = va_arg(ap, const char *);
        row[i] = strndup(v ? v : "-", 200);
        if (!row[i]) {
            for (size_t j = 0; j < i; j++)
                free(row[j]);
            return -1;
        }
        for (char *p = row[i]; *p; p++)
            if (*p == '\n' || *p == '\t')
                *p = ' ';
        size_t w = strlen(row[i]);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return 0;
}

int table_init(struct table *t, size_t ncols, ...)
{
    memset(t, 0, sizeof(*t));
    if (ncols > TABLE_MAX_COLS)
        return -1;
    t->ncols = ncols;
    va_list ap;
    va_start(ap, ncols);
    int rc = add_row(t, ap);
    va_end(ap);
    return rc;
}

int table_row(struct table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    int rc = add_row(t, ap);
    va_end(ap);
    return rc;
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
