/* davit: `davit server …` runs the control plane; every other command is the client. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
