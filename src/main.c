/* airlock: one binary, one subcommand per role. */
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "server/server.h"

int worker_main(int argc, char **argv);
int keys_main(int argc, char **argv);
int agent_identity_main(int argc, char **argv);
int gateway_main(int argc, char **argv);
int mockmodel_main(int argc, char **argv);

struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
};

static const struct command commands[] = {
    {"server", server_main, "run the control plane (Managed Agents API, agent loop)"},
    {"worker", worker_main, "run the environment worker (poll, run, check)"},
    {"gateway", gateway_main, "run the MCP tunnel gateway (dials the tunnel edge)"},
    {"keys", keys_main, "issue and revoke server API keys and environment keys"},
    {"mock-model", mockmodel_main, "scripted stand-in for a model provider (tests only)"},
    {"policy", policy_main, "check a tool policy file; explain a decision"},
    {"audit", audit_main, "verify an exported audit log's hash chain"},
    {"agent-identity", agent_identity_main, "export the agent identity issuer's public keys"},
};

#ifndef AIRLOCK_VERSION
#define AIRLOCK_VERSION "unknown"
#endif

static void
usage(FILE *f)
{
	fprintf(f, "usage: airlock <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "  %-11s %s\n", "version", "print the version");
	fprintf(f, "\nRun 'airlock <command> --help' for a command's options.\n"
	           "Exit status: 0 ok, 1 failure, 2 usage or configuration error.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		printf("airlock %s\n", AIRLOCK_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	if (argv[1][0] == '-')
		fprintf(stderr, "airlock: unknown option '%s'\n", argv[1]);
	else
		fprintf(stderr, "airlock: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
