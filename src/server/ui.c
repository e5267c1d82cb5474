/*
 * The web UI's files, served from the table the build generated. Every
 * answer carries the security headers: the UI's pages run only the
 * server's own script and style, talk only to the server, and cannot be
 * framed (docs/ui.md, "Security").
 */
#include "server/ui.h"

#include "server/request.h"

#include <string.h>

#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

const struct ui_file *ui_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/ui/index.html";
    for (size_t i = 0; i < ui_files_count; i++)
        if (strcmp(ui_files[i].path, path) == 0)
            return &ui_files[i];
    return NULL;
}

int h_ui_asset(struct req *r)
{
    const struct ui_file *f = ui_find(r->path);
    if (!f)
        return reply_error(r, 404, "no such file");
    /* The bytes are constant for the life of the process: no copy. */
    r->resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!r->resp)
        return reply_error(r, 500, "out of memory");
    r->status = 200;
    MHD_add_response_header(r->resp, "Content-Type", f->content_type);
    MHD_add_response_header(r->resp, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(r->resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r->resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r->resp, "X-Frame-Options", "DENY");
    return HANDLER_DONE;
}
