/*
 * ui: the web UI (docs/ui.md), plain HTML, CSS and JavaScript files from
 * src/server/ui/ compiled into the binary at build time
 * (cmake/embed-ui.cmake), served at "/" and "/ui/FILE" with a strict
 * Content-Security-Policy. The files are constant; nothing is owned.
 */
#ifndef DAVIT_SERVER_UI_H
#define DAVIT_SERVER_UI_H

#include <stddef.h>

struct req;

/* One embedded file: its path as served ("/ui/app.js"). */
struct ui_file {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* The generated table (ui_files.c in the build directory). */
extern const struct ui_file ui_files[];
extern const size_t ui_files_count;

/* The embedded file served at path ("/" is /ui/index.html), or NULL. */
const struct ui_file *ui_find(const char *path);

/* GET / and GET /ui/ *: the file, 404 when there is none. HANDLER_DONE. */
int h_ui_asset(struct req *r);

#endif
