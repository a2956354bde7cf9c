/* `airlock audit verify FILE`: checks an exported audit log's hash chain offline and names
 * the first record that breaks it; `airlock audit export`: a verified copy of the log (or
 * its tail from a time on) as JSON lines. See docs/server/audit.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "admin.h"
#include "audit_chain.h"
#include "buf.h"
#include "err.h"
#include "jose.h"
#include "util.h"

static const char audit_verify_text[] =
    "verify  check the hash chain of a JSON-lines audit export (FILE, or - for\n"
    "        stdin): exit 0 with the count, or exit 1 naming the first bad\n"
    "        record (FILE:LINE: seq N: what is wrong)\n"
    "\n"
    "  --anchor SEQ:HASH  the export starts after record SEQ, whose hash is HASH\n"
    "                     (a partial export); default: it starts at seq 1\n"
    "  --jwks FILE        check the signatures of audit.checkpoint records with these\n"
    "                     keys (the server's /.well-known/jwks.json): a checkpoint whose\n"
    "                     signature or named head is wrong is the first bad record\n";

static const char audit_export_text[] =
    "export  copy the server's audit log (audit.file, default\n"
    "        <data_dir>/audit.jsonl) as JSON lines, verifying the chain as it\n"
    "        goes: exit 1 at the first bad record (what came before it is out)\n"
    "\n"
    "  --since TIME   start at the first record at or after TIME (RFC 3339);\n"
    "                 everything after it follows, so the copy is one piece of\n"
    "                 the chain: stderr gives the --anchor to verify it with\n"
    "  --out FILE     write there (created 0600, must not exist); default -\n"
    "                 (stdout)\n";

static void
audit_usage(FILE *f)
{
	fprintf(f,
	        "usage: airlock audit verify [--anchor SEQ:HASH] [--jwks FILE] FILE\n"
	        "       airlock audit export [--since TIME] [--out FILE|-] FILE\n"
	        "\n%s\n%s",
	        audit_verify_text, audit_export_text);
}

static void
audit_export_usage(FILE *f)
{
	fprintf(f, "usage: airlock audit export [--since TIME] [--out FILE|-] FILE\n\n%s",
	        audit_export_text);
}

/* Checkpoint signatures (--jwks): the JWS must verify with one of the keys and name the
 * record before the checkpoint (its seq and hash), as the record's own fields do. */
struct cp_check {
	struct jose_keyset *ks;
	uint64_t verified, unsigned_n, last_seq;
	const char *path;
};

static int
cp_verify(void *arg, const json_t *rec, const char *hash)
{
	struct cp_check *x = arg;
	const json_t *res = json_object_get(rec, "resources");
	const char *jws = json_string_value(json_object_get(res, "jws"));
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
	const char *prev = json_string_value(json_object_get(rec, "prev"));
	json_t *pl = NULL;
	char err[256] = "";
	(void)hash;
	if (jws == NULL) {
		x->unsigned_n++;
		return 0;
	}
	int r = jose_verify(jws, strlen(jws), x->ks, JOSE_ALGS_ALL, &pl, err, sizeof err);
	if (r == 0 && (json_integer_value(json_object_get(pl, "seq")) != seq - 1 ||
	               !json_is_string(json_object_get(pl, "hash")) || prev == NULL ||
	               strcmp(json_string_value(json_object_get(pl, "hash")), prev) != 0 ||
	               json_integer_value(json_object_get(res, "seq")) != seq - 1 ||
	               !json_is_string(json_object_get(res, "hash")) ||
	               strcmp(json_string_value(json_object_get(res, "hash")), prev) != 0)) {
		snprintf(err, sizeof err, "the signed head is not the record before it");
		r = AL_E_INVAL;
	}
	json_decref(pl);
	if (r != 0) {
		fprintf(stderr, "%s: checkpoint seq %lld: %s\n", x->path, (long long)seq, err);
		return r;
	}
	x->verified++;
	x->last_seq = (uint64_t)seq;
	return 0;
}

static int
load_jwks(const char *file, struct jose_keyset **ks)
{
	char err[256];
	struct buf b;
	char chunk[4096];
	size_t n;
	int r = AL_E_IO;
	buf_init(&b, JOSE_MAX_JWKS);
	FILE *f = fopen(file, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", file, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (buf_add(&b, chunk, n) != 0) {
			fprintf(stderr, "%s: larger than a key set may be\n", file);
			goto out;
		}
	}
	if ((r = jose_jwks_parse(b.data ? b.data : "", b.len, ks, err, sizeof err)) != 0)
		fprintf(stderr, "%s: %s\n", file, err);
out:
	if (f)
		fclose(f);
	buf_free(&b);
	return r;
}

static int
audit_verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"anchor", required_argument, NULL, 'a'},
	    {"jwks", required_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct audit_verify v;
	struct cp_check cp = {0};
	const char *anchor = NULL, *jwks = NULL;
	int ch, rc = 2;
	audit_verify_init(&v);
	optind = 1;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			anchor = optarg;
			break;
		case 'j':
			jwks = optarg;
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
	if (jwks) {
		if (load_jwks(jwks, &cp.ks) != 0)
			return 2;
		cp.path = path;
		v.checkpoint = cp_verify;
		v.checkpoint_ctx = &cp;
	}
	if (anchor) {
		const char *colon = strchr(anchor, ':');
		uint64_t seq;
		if (colon == NULL ||
		    parse_uint(anchor, (size_t)(colon - anchor), INT64_MAX, &seq) != 0 ||
		    audit_verify_anchor(&v, seq, colon + 1) != 0) {
			fprintf(stderr,
			        "airlock audit verify: --anchor wants SEQ:HASH (64 hex digits)\n");
			goto out;
		}
	}
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		goto out;
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
		rc = 1;
		goto out;
	}
	if (r != 0) {
		fprintf(stderr, "%s: %s\n", path, v.msg);
		goto out;
	}
	printf("%s: ok: %llu records", path, (unsigned long long)v.count);
	if (v.count)
		printf(" (seq %llu..%llu), last hash %s",
		       (unsigned long long)(v.head.seq - v.count + 1),
		       (unsigned long long)v.head.seq, v.head.last);
	printf("\n");
	if (jwks && cp.verified)
		printf("%s: %llu signed checkpoints verified, the last at seq %llu; %llu records "
		       "after it are not covered by a signature\n",
		       path, (unsigned long long)cp.verified, (unsigned long long)cp.last_seq,
		       (unsigned long long)(v.head.seq - cp.last_seq));
	else if (jwks)
		printf("%s: no signed checkpoint: a cut tail or a rewritten log would not show\n",
		       path);
	else if (v.checkpoints)
		printf("%s: %llu checkpoints chained; their signatures are not checked (give "
		       "--jwks FILE)\n",
		       path, (unsigned long long)v.checkpoints);
	if (cp.unsigned_n)
		printf("%s: %llu checkpoints carry no signature (the server had no signing key)\n",
		       path, (unsigned long long)cp.unsigned_n);
	rc = 0;
out:
	jose_keyset_free(cp.ks);
	return rc;
}

/* The state of one export: the chain checked so far and where the copy starts. */
struct export_run {
	struct audit_verify v;
	int64_t since;
	bool started;
	struct audit_chain anchor; /* the record before the first one copied */
	uint64_t copied;
	FILE *out;
};

/* One complete line: verified, then copied once the start is reached. */
static int
export_line(struct export_run *x, const char *line, size_t len)
{
	struct audit_chain before = x->v.head;
	if (audit_verify_line(&x->v, line, len) != 0)
		return AL_E_INVAL;
	if (!x->started) {
		json_t *rec = json_loadb(line, len, 0, NULL);
		const char *ts = json_string_value(json_object_get(rec, "time"));
		int64_t t;
		x->started = ts && time_parse_rfc3339(ts, &t) == 0 && t >= x->since;
		json_decref(rec);
		if (!x->started)
			return 0;
		x->anchor = before;
	}
	if (fwrite(line, 1, len, x->out) != len || fputc('\n', x->out) == EOF)
		return AL_E_IO;
	x->copied++;
	return 0;
}

static int
audit_export_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"since", required_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct export_run x = {.since = INT64_MIN};
	const char *out_path = "-";
	int ch, r = 0, rc = 2;
	FILE *in = NULL;
	struct buf b;
	char chunk[65536];
	size_t n;
	buf_init(&b, AUDIT_LINE_MAX + 1);
	audit_verify_init(&x.v);
	optind = 1;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (time_parse_rfc3339(optarg, &x.since) != 0) {
				fprintf(stderr, "airlock audit export: --since wants an RFC 3339 "
				                "time\n");
				goto out;
			}
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'h':
			audit_export_usage(stdout);
			rc = 0;
			goto out;
		default:
			rc = cli_option_error("audit export", ch, argc, argv);
			goto out;
		}
	}
	if (optind != argc - 1) {
		audit_export_usage(stderr);
		goto out;
	}
	const char *path = argv[optind];
	if ((in = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		goto out;
	}
	if (strcmp(out_path, "-") == 0) {
		x.out = stdout;
	} else {
		/* an export holds who did what: as private as the log itself */
		int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || (x.out = fdopen(fd, "wb")) == NULL) {
			fprintf(stderr, "%s: %s\n", out_path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
	}
	/* Lines split by hand, as in audit_verify_stream: one endless line cannot grow
	 * memory past AUDIT_LINE_MAX. A last line without '\n' is a write in progress (the
	 * server appends while we read) or a torn one: not copied. */
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), in)) > 0) {
		size_t off = 0;
		while (r == 0 && off < n) {
			char *nl = memchr(chunk + off, '\n', n - off);
			size_t take = nl ? (size_t)(nl - (chunk + off)) : n - off;
			if (buf_add(&b, chunk + off, take) != 0) {
				r = audit_verify_line(&x.v, "", AUDIT_LINE_MAX + 1);
				break;
			}
			off += take;
			if (nl) {
				r = export_line(&x, b.data ? b.data : "", b.len);
				buf_reset(&b);
				off++;
			}
		}
	}
	rc = 1;
	if (r == 0 && ferror(in)) {
		fprintf(stderr, "%s: read error\n", path);
		goto out;
	}
	if (x.v.failed) {
		fprintf(stderr, "%s:%llu: seq %llu: %s\n", path, (unsigned long long)x.v.bad_line,
		        (unsigned long long)x.v.bad_seq, x.v.msg);
		fprintf(stderr, "%s: export stopped there: %llu records copied\n", path,
		        (unsigned long long)x.copied);
		goto out;
	}
	if (r != 0 || fflush(x.out) != 0) {
		fprintf(stderr, "%s: write error\n", out_path);
		goto out;
	}
	fprintf(stderr, "%s: exported %llu of %llu records", path, (unsigned long long)x.copied,
	        (unsigned long long)x.v.count);
	if (x.copied && x.anchor.seq)
		fprintf(stderr, "; verify with --anchor %llu:%s", (unsigned long long)x.anchor.seq,
		        x.anchor.last);
	fprintf(stderr, "\n");
	rc = 0;
out:
	if (in)
		fclose(in);
	if (x.out && x.out != stdout && fclose(x.out) != 0 && rc == 0) {
		fprintf(stderr, "%s: write error\n", out_path);
		rc = 1;
	}
	buf_free(&b);
	return rc;
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
	if (strcmp(argv[1], "export") == 0)
		return audit_export_main(argc - 1, argv + 1);
	fprintf(stderr, "airlock audit: unknown command '%s'\n", argv[1]);
	audit_usage(stderr);
	return 2;
}
