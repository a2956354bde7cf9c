/* The command-line convention every `airlock` command follows (docs/cli.md): -h/--help
 * on every command and subcommand, "unknown option" for a flag nobody defined, "needs a
 * value" only for a known flag without one, and exit status 2 for both. */
#ifndef AL_CLI_H
#define AL_CLI_H

/* After getopt_long returned '?' or ':' — called with opterr = 0 and an optstring that
 * starts with ':' — prints "airlock CMD: unknown option 'X'" or "airlock CMD: option X
 * needs a value" and where the help is. Returns 2, the exit status. */
int cli_option_error(const char *cmd, int ch, int argc, char *const *argv);

#endif
