/* `airlock audit verify FILE`: checks an exported audit log's hash chain offline and names
 * the first record that breaks it. See docs/server/audit.md. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "admin.h"
#include "audit_chain.h"
#include "buf.h"

static void
audit_usage(FILE *f)
{
	fprintf(f, "usage: airlock audit verify [--anchor SEQ:HASH] FILE\n"
	           "\n"
	           "verify  check the hash chain of a JSON-lines audit export (FILE, or - for\n"
	           "        stdin): exit 0 with the count, or exit 1 naming the first bad\n"
	           "        record (FILE:LINE: seq N: what is wrong)\n"
	           "\n"
	           "  --anchor SEQ:HASH  the export starts after record SEQ, whose hash is HASH\n"
	           "                     (a partial export); default: it starts at seq 1\n");
}

static int
audit_verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"anchor", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct audit_verify v;
	const char *anchor = NULL;
	int ch;
	audit_verify_init(&v);
	optind = 1;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			anchor = optarg;
			break;
		case 'h':
			audit_usage(stdout);
			return 0;
		default:
			return cli_option_error("audit verify", ch, argc, argv);
		}
	}
	if (optind != argc - 1) {
		audit_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	if (anchor) {
		const char *colon = strchr(anchor, ':');
		uint64_t seq;
		if (colon == NULL ||
		    parse_uint(anchor, (size_t)(colon - anchor), INT64_MAX, &seq) != 0 ||
		    audit_verify_anchor(&v, seq, colon + 1) != 0) {
			fprintf(stderr,
			        "airlock audit verify: --anchor wants SEQ:HASH (64 hex digits)\n");
			return 2;
		}
	}
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 2;
	}
	int r = audit_verify_stream(&v, f);
	if (f != stdin)
		fclose(f);
	if (v.failed) {
		if (v.bad_seq)
			fprintf(stderr, "%s:%llu: seq %llu: %s\n", path,
			        (unsigned long long)v.bad_line, (unsigned long long)v.bad_seq,
			        v.msg);
		else
			fprintf(stderr, "%s:%llu: %s\n", path, (unsigned long long)v.bad_line,
			        v.msg);
		fprintf(stderr, "%s: %llu records verified before it\n", path,
		        (unsigned long long)v.count);
		return 1;
	}
	if (r != 0) {
		fprintf(stderr, "%s: %s\n", path, v.msg);
		return 2;
	}
	printf("%s: ok: %llu records", path, (unsigned long long)v.count);
	if (v.count)
		printf(" (seq %llu..%llu), last hash %s",
		       (unsigned long long)(v.head.seq - v.count + 1),
		       (unsigned long long)v.head.seq, v.head.last);
	printf("\n");
	if (v.checkpoints)
		printf("%s: %llu checkpoints chained; their signatures are not checked (no "
		       "checkpoint key support yet)\n",
		       path, (unsigned long long)v.checkpoints);
	return 0;
}

int
audit_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		audit_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify_main(argc - 1, argv + 1);
	fprintf(stderr, "airlock audit: unknown command '%s'\n", argv[1]);
	audit_usage(stderr);
	return 2;
}
