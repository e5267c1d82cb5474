#include "common/outcome.h"

#include <string.h>

static const struct {
    const char *name;
    int exit_code;
} outcomes[] = {
    [OUTCOME_FINISHED] = {"finished", 0}, [OUTCOME_FAILED] = {"failed", 1},
    [OUTCOME_CANCELED] = {"canceled", 4}, [OUTCOME_TIMED_OUT] = {"timed_out", 3},
    [OUTCOME_LOST] = {"lost", 5},
};

#define N_OUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))

const char *outcome_name(enum outcome o)
{
    return (unsigned)o < N_OUTCOMES ? outcomes[o].name : "failed";
}

int outcome_parse(const char *name, enum outcome *o)
{
    for (unsigned i = 0; i < N_OUTCOMES; i++) {
        if (strcmp(name, outcomes[i].name) == 0) {
            *o = (enum outcome)i;
            return 0;
        }
    }
    return -1;
}

int outcome_exit_code(enum outcome o)
{
    return (unsigned)o < N_OUTCOMES ? outcomes[o].exit_code : 1;
}
