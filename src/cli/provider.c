/* What the providers share (provider.h). */
#include "cli/provider.h"

#include <stdlib.h>

void prov_group_free(struct prov_group *g)
{
    free(g->instances);
    g->instances = NULL;
    g->n_instances = 0;
}
