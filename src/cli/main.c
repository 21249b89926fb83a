/*
 * main.c: the `lakehouse` binary. Everything lives in lh_cli_main (src/cli/commands.c),
 * which the build puts in the `lh` library so unit tests can run the command line too.
 */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return lh_cli_main(argc, argv);
}
