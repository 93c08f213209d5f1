/* cmd_init.c - placeholder until init lands in this commit series. */
#include "ailora/error.h"
#include "cli.h"
int cmd_init(int argc, char **argv) { return AIL_ERROR(AIL_ERR_ARG, "init: not built yet"), cli_fail("ailora init"); }
