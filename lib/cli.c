/* Argument errors worded the same in every command (see cli.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cli_option_error(const char *cmd, int ch, int argc, char *const *argv)
{
	/* getopt_long has moved optind past the offending word (and past a long option's
	 * missing value, which there is none of) */
	const char *word = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "?";
	size_t n = strcspn(word, "="); /* --name=value: the name */
	char shortopt[3] = {'-', (char)optopt, '\0'};
	if (word[0] == '-' && word[1] != '-' && optopt != 0)
		word = shortopt, n = 2; /* a short option, maybe inside a cluster (-xv) */
	if (ch == ':')
		fprintf(stderr, "airlock %s: option %.*s needs a value\n", cmd, (int)n, word);
	else
		fprintf(stderr, "airlock %s: unknown option '%.*s'\n", cmd, (int)n, word);
	fprintf(stderr, "Run 'airlock %s --help' for the options.\n", cmd);
	return 2;
}
