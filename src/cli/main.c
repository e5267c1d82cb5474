/* davit: `davit server …` runs the control plane; every other command is the client. */
#include "cli/cli.h"
#include "common/secure.h"

#include <jansson.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    /* Run specs carry secrets through JSON (the server's store and dispatch, the client's
     * submit): every block jansson frees is wiped (common/secure.h). */
    json_set_alloc_funcs(malloc, secure_free);
    return cli_main(argc, argv);
}
