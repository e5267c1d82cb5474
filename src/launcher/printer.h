/*
 * printer: shows a run's spool records on davit-launcher exec's stdout,
 * either as readable lines (a timestamp, the phase, a marker, the text) or
 * as one JSON object a line (--json). See docs/launcher.md, "Output".
 *
 * Records are printed as they were recorded: an output chunk that does not
 * end in a newline is still shown as a line of its own. JSON text is always
 * valid UTF-8 (invalid bytes become U+FFFD). The R record is not printed:
 * the launcher prints its own result line last (printer_result), which also
 * covers results the worker could not record. Holds no buffers across calls.
 */
#ifndef DAVIT_LAUNCHER_PRINTER_H
#define DAVIT_LAUNCHER_PRINTER_H

#include "common/outcome.h"
#include "common/spool.h"

#include <jansson.h>

#include <stdint.h>
#include <stdio.h>

enum printer_format { PRINTER_TEXT, PRINTER_JSON };

struct printer {
    FILE *out;
    enum printer_format format;
    char run_id[64]; /* a copy: the printer outlives the run it shows */
    int width;       /* of the phase column in text */
};

/* Never fails. */
void printer_init(struct printer *p, FILE *out, enum printer_format format, const char *run_id);

/* The run whose records follow (copied, truncated to 63 bytes). Never fails. */
void printer_set_run(struct printer *p, const char *run_id);

/* Returns 0, or -1 when out cannot be written (errno set). */
int printer_record(struct printer *p, const struct spool_record *r);

/* A message of the launcher's own ("adopted run …", "run timeout expired"). */
int printer_note(struct printer *p, const char *text);

int printer_result(struct printer *p, enum outcome outcome, const char *phase, int exit_status,
                   int64_t duration_ms, const char *reason);

/* Flushes out. Returns 0 or -1. */
int printer_flush(struct printer *p);

/*
 * Appends s[0, len) to a JSON string made valid UTF-8: invalid bytes become
 * U+FFFD. Returns a new reference or NULL when out of memory.
 */
json_t *printer_json_text(const char *s, size_t len);

#endif
