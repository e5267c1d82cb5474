/*
 * escape: text from the server made safe for a terminal. A launcher chooses
 * its hostname, metadata and failure reasons, and a user the names of pools:
 * printed raw, an ESC or CSI in them would drive the operator's terminal
 * (clear it, set its title, remap keys, hide lines). Every CLI output that is
 * not --json goes through here.
 *
 * The rule: valid UTF-8 text is kept as it is, except the control characters:
 * C0 (0x00-0x1f) and DEL as \xNN, C1 (U+0080-U+009F) as \uNNNN, and a byte
 * that is not part of valid UTF-8 as \xNN (a terminal in an 8-bit mode reads
 * a lone 0x9b as CSI). A backslash is kept as it is, so that metadata shown
 * as JSON stays readable: the text is for eyes; --json gives exact values.
 */
#ifndef DAVIT_CLI_ESCAPE_H
#define DAVIT_CLI_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Writes the first len bytes of s to out, escaped. Never fails (a write
 * error is the stream's, as with fputs). */
void escape_write(FILE *out, const char *s, size_t len);

/* Writes the string s (NULL: nothing) to out, escaped. Never fails. */
void escape_puts(FILE *out, const char *s);

/* An escaped copy of the first len bytes of s. Caller frees; NULL on OOM. */
char *escape_dup(const char *s, size_t len);

#endif
