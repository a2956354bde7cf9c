/* The glob and grep tools: a bounded walk that never follows symlinks and skips .git and
 * node_modules; glob matches minimatch-style patterns and sorts newest first, grep runs rg
 * (as the SDK does) or, without one, a built-in POSIX-regex walker with the SDK's limits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

#define WALK_MAX_DEPTH 40
#define MAX_PATTERNS 256
#define MAX_SEGS 64
#define GREP_MAX_LINE 2000
#define GREP_ERR_MAX (64 * 1024)
#define RG_DEADLINE_MS 120000

/* ---- glob patterns ---- */

struct glob_pat {
	char *segs[MAX_SEGS];
	size_t n;
};

struct glob_set {
	struct glob_pat pats[MAX_PATTERNS];
	size_t n;
	bool overflow;
};

/* Finds the brace group to expand first: the first '{' with a matching '}' and a top-level
 * comma inside. Returns false when there is none. */
static bool
find_brace(const char *p, size_t *open, size_t *close)
{
	for (size_t i = 0; p[i] != '\0'; i++) {
		if (p[i] != '{')
			continue;
		int depth = 0;
		bool comma = false;
		for (size_t j = i; p[j] != '\0'; j++) {
			if (p[j] == '{')
				depth++;
			else if (p[j] == '}' && --depth == 0) {
				if (comma) {
					*open = i;
					*close = j;
					return true;
				}
				break;
			} else if (p[j] == ',' && depth == 1)
				comma = true;
		}
	}
	return false;
}

static void
set_add(struct glob_set *set, const char *p)
{
	if (set->n >= MAX_PATTERNS) {
		set->overflow = true;
		return;
	}
	struct glob_pat *g = &set->pats[set->n];
	g->n = 0;
	const char *s = p;
	while (*s != '\0') {
		while (*s == '/')
			s++;
		const char *e = s;
		while (*e != '\0' && *e != '/')
			e++;
		if (e > s && !(e - s == 1 && s[0] == '.')) {
			if (g->n >= MAX_SEGS) {
				set->overflow = true;
				for (size_t k = 0; k < g->n; k++)
					free(g->segs[k]);
				return;
			}
			g->segs[g->n++] = xstrndup(s, (size_t)(e - s));
		}
		s = e;
	}
	set->n++;
}

static void
expand(struct glob_set *set, const char *p, int depth)
{
	size_t o, c;
	if (depth > 16 || !find_brace(p, &o, &c)) {
		set_add(set, p);
		return;
	}
	/* Split the group's body at top-level commas and expand each alternative. */
	size_t start = o + 1;
	int d = 0;
	for (size_t i = o + 1; i <= c && !set->overflow; i++) {
		if (p[i] == '{')
			d++;
		else if (p[i] == '}' && d > 0)
			d--;
		else if ((p[i] == ',' && d == 0) || i == c) {
			char *alt = xasprintf("%.*s%.*s%s", (int)o, p, (int)(i - start), p + start,
			                      p + c + 1);
			expand(set, alt, depth + 1);
			free(alt);
			start = i + 1;
		}
	}
}

static void
set_free(struct glob_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		for (size_t k = 0; k < set->pats[i].n; k++)
			free(set->pats[i].segs[k]);
	set->n = 0;
}

static bool
seg_match(const char *pat, const char *name)
{
	/* minimatch with dot:false: wildcards never match a leading '.'. */
	return fnmatch(pat, name, FNM_PERIOD | FNM_NOESCAPE) == 0;
}

/* Whether names[0..nn) matches the whole pattern (prefix=false), or could be the leading
 * directories of a match (prefix=true). Dynamic programming over (segment, name). */
static bool
pat_match(const struct glob_pat *g, char *const *names, size_t nn, bool prefix)
{
	/* ok[i][j]: pattern segments from i match names from j. */
	bool ok[MAX_SEGS + 1][WALK_MAX_DEPTH + 3];
	if (nn > WALK_MAX_DEPTH + 1)
		return false;
	for (size_t i = g->n + 1; i-- > 0;) {
		for (size_t j = nn + 1; j-- > 0;) {
			bool v;
			if (j == nn) {
				if (prefix)
					v = i < g->n;
				else
					v = i == g->n ||
					    (strcmp(g->segs[i], "**") == 0 && ok[i + 1][j]);
			} else if (i == g->n) {
				v = false;
			} else if (strcmp(g->segs[i], "**") == 0) {
				v = ok[i + 1][j] || (names[j][0] != '.' && ok[i][j + 1]);
				/* A directory walked into by "**" may still hold a match. */
				if (prefix && names[j][0] != '.')
					v = v || ok[i][j + 1];
			} else {
				v = seg_match(g->segs[i], names[j]) && ok[i + 1][j + 1];
			}
			ok[i][j] = v;
		}
	}
	return ok[0][0];
}

int
tool_glob_match(const char *pattern, const char *relpath)
{
	struct glob_set *set = xcalloc(1, sizeof(*set));
	char *names[WALK_MAX_DEPTH + 2];
	size_t nn = 0;
	char *copy = xstrdup(relpath);
	int r = 0;
	for (char *t = copy; *t != '\0' && nn < WALK_MAX_DEPTH + 1;) {
		char *slash = strchr(t, '/');
		if (slash != NULL)
			*slash = '\0';
		if (*t != '\0')
			names[nn++] = t;
		if (slash == NULL)
			break;
		t = slash + 1;
	}
	char *p = xstrdup(pattern);
	for (char *q = p; *q != '\0'; q++)
		if (*q == '\\')
			*q = '/';
	expand(set, p, 0);
	for (size_t i = 0; i < set->n && r == 0; i++)
		r = pat_match(&set->pats[i], names, nn, false) ? 1 : 0;
	set_free(set);
	free(set);
	free(p);
	free(copy);
	return r;
}

/* ---- the walk ---- */

struct walk {
	struct tool_ctx *ctx;
	long remaining;
	char *names[WALK_MAX_DEPTH + 2];
	size_t depth;
	/* dir: whether to enter names[0..depth) (NULL: always); file: called per regular
	 * file, returns false to stop. */
	bool (*enter)(struct walk *w);
	bool (*file)(struct walk *w, int dirfd, const char *name);
	void *arg;
	bool stop;
};

static void
walk_dir(struct walk *w, int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	if (d == NULL) {
		close(dfd);
		return;
	}
	while (!w->stop && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (strcmp(name, ".git") == 0 || strcmp(name, "node_modules") == 0)
			continue;
		if (w->remaining-- <= 0 || w->ctx->cancelled) {
			w->stop = true;
			break;
		}
		unsigned char type = e->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
		}
		/* Symlinks, devices, FIFOs and sockets are skipped: never followed out. */
		if (type == DT_DIR) {
			if (w->depth >= WALK_MAX_DEPTH)
				continue;
			w->names[w->depth++] = (char *)name;
			if (w->enter == NULL || w->enter(w)) {
				int fd = openat(dirfd(d), name,
				                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (fd >= 0)
					walk_dir(w, fd);
			}
			w->depth--;
		} else if (type == DT_REG) {
			if (!w->file(w, dirfd(d), name))
				w->stop = true;
		}
	}
	closedir(d);
}

/* Appends names[0..depth) and name to base as a path. */
static char *
walk_path(struct walk *w, const char *base, const char *name)
{
	struct buf b;
	buf_init(&b, 1u << 20);
	(void)buf_add_str(&b, base);
	for (size_t i = 0; i < w->depth; i++) {
		if (b.len == 0 || b.data[b.len - 1] != '/')
			(void)buf_add(&b, "/", 1);
		(void)buf_add_str(&b, w->names[i]);
	}
	if (name != NULL && name[0] != '\0') {
		if (b.len == 0 || b.data[b.len - 1] != '/')
			(void)buf_add(&b, "/", 1);
		(void)buf_add_str(&b, name);
	}
	return buf_steal(&b);
}

/* ---- glob ---- */

struct glob_hit {
	char *path;
	int64_t mtime_ns;
};

struct glob_run {
	struct glob_set *set;
	const char *base;
	struct glob_hit *hits;
	size_t n, cap;
};

static bool
glob_enter(struct walk *w)
{
	struct glob_run *g = w->arg;
	for (size_t i = 0; i < g->set->n; i++)
		if (pat_match(&g->set->pats[i], w->names, w->depth, true))
			return true;
	return false;
}

static bool
glob_file(struct walk *w, int dirfd, const char *name)
{
	struct glob_run *g = w->arg;
	struct stat st;
	bool m = false;
	w->names[w->depth] = (char *)name;
	for (size_t i = 0; i < g->set->n && !m; i++)
		m = pat_match(&g->set->pats[i], w->names, w->depth + 1, false);
	if (!m)
		return true;
	int64_t mt = 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->hits = xreallocarray(g->hits, g->cap, sizeof(*g->hits));
	}
	g->hits[g->n].path = walk_path(w, g->base, name);
	g->hits[g->n].mtime_ns = mt;
	g->n++;
	return true;
}

static int
hit_cmp(const void *a, const void *b)
{
	const struct glob_hit *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns > y->mtime_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

static bool
pattern_can_ascend(const char *p)
{
	const char *s = p;
	for (;;) {
		size_t n = strcspn(s, "\\/{},");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return true;
		if (s[n] == '\0')
			return false;
		s += n + 1;
	}
}

void
tool_glob_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *pattern = tool_in_str(in, "pattern");
	const char *sp = tool_in_str(in, "path");
	struct glob_set *set = NULL;
	struct glob_run g = {0};
	char *canon = NULL, *p = NULL;
	int fd = -1;

	if (pattern[0] == '/') {
		tool_fail(res, "glob: absolute pattern not permitted; pass a relative pattern (and "
		               "optionally path)");
		goto out;
	}
	if (pattern_can_ascend(pattern)) {
		tool_fail(res, "glob: \"..\" is not permitted in the pattern");
		goto out;
	}
	if (sp != NULL && sp[0] != '\0') {
		if (tool_path_resolve(ctx, sp, &canon, res) != 0)
			goto out;
		fd = tool_path_open(ctx, canon, O_RDONLY | O_DIRECTORY, 0);
		g.base = canon;
	} else {
		fd = openat(ctx->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		g.base = ctx->workdir;
	}
	set = xcalloc(1, sizeof(*set));
	p = xstrdup(pattern);
	for (char *q = p; *q != '\0'; q++)
		if (*q == '\\')
			*q = '/';
	expand(set, p, 0);
	if (set->overflow) {
		tool_fail(res, "glob: pattern expands to too many alternatives");
		goto out;
	}
	g.set = set;
	if (fd >= 0) {
		struct walk w = {.ctx = ctx,
		                 .remaining = TOOL_WALK_MAX_ENTRIES,
		                 .enter = glob_enter,
		                 .file = glob_file,
		                 .arg = &g};
		walk_dir(&w, fd);
		fd = -1;
	}
	if (ctx->cancelled) {
		tool_fail(res, "glob: aborted");
		goto out;
	}
	if (g.n == 0) {
		(void)buf_add_str(&res->text, "no matches");
		goto out;
	}
	qsort(g.hits, g.n, sizeof(*g.hits), hit_cmp);
	for (size_t i = 0; i < g.n && i < TOOL_GLOB_RESULT_LIMIT; i++) {
		if (i > 0)
			(void)buf_add(&res->text, "\n", 1);
		(void)buf_add_str(&res->text, g.hits[i].path);
	}
out:
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < g.n; i++)
		free(g.hits[i].path);
	free(g.hits);
	if (set != NULL)
		set_free(set);
	free(set);
	free(canon);
	free(p);
}

/* ---- grep with rg ---- */

/* The SDK's findExecutable('rg', notInside): the first executable rg in an absolute,
 * normalized PATH entry whose real path is outside the workdir and the allowed roots. */
static char *
find_rg(struct tool_ctx *ctx)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		return NULL;
	char *copy = xstrdup(path), *found = NULL, *next = NULL;
	for (char *dir = copy; dir != NULL && found == NULL; dir = next) {
		char *colon = strchr(dir, ':');
		next = colon != NULL ? colon + 1 : NULL;
		if (colon != NULL)
			*colon = '\0';
		if (dir[0] != '/')
			continue;
		char *norm = tool_path_lexical("/", dir);
		bool normalized = strcmp(norm, dir) == 0;
		free(norm);
		if (!normalized)
			continue;
		char *cand = xasprintf("%s/rg", strcmp(dir, "/") == 0 ? "" : dir);
		struct stat st;
		char *real = NULL;
		if (access(cand, X_OK) == 0 && stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
		    (real = realpath(cand, NULL)) != NULL) {
			bool inside =
			    strncasecmp(real, ctx->root, strlen(ctx->root)) == 0 &&
			    (real[strlen(ctx->root)] == '/' || strcmp(ctx->root, "/") == 0);
			for (size_t i = 0; i < ctx->nroots && !inside; i++) {
				size_t n = strlen(ctx->roots[i].canon);
				inside = strncasecmp(real, ctx->roots[i].canon, n) == 0 &&
				         (real[n] == '/' || n == 1);
			}
			if (!inside) {
				found = real;
				real = NULL;
			}
		}
		free(real);
		free(cand);
	}
	free(copy);
	return found;
}

static void
grep_rg(struct tool_ctx *ctx, const char *rg, const char *pattern, const char *search,
        struct tool_res *res)
{
	int o[2] = {-1, -1}, e[2] = {-1, -1}, st = 0;
	void *proc = NULL;
	char **env = tool_env_build(NULL);
	const char *argv[] = {"rg", "--no-config", "-n", "--no-heading", "-e", pattern,
	                      "--", search,        NULL};
	struct buf out, err;
	bool truncated = false, aborted = false, oeof = false, eeof = false;
	uint64_t deadline = now_mono_ms() + RG_DEADLINE_MS;
	char chunk[65536];

	buf_init(&out, TOOL_GREP_OUTPUT_LIMIT + sizeof(chunk));
	buf_init(&err, GREP_ERR_MAX);
	if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) {
		tool_fail(res, "grep: rg failed: %s", strerror(errno));
		goto out;
	}
	int fds[3] = {-1, o[1], e[1]};
	struct tool_spawn_req req = {.path = rg,
	                             .argv = argv,
	                             .envp = (const char *const *)env,
	                             .cwd = NULL,
	                             .fds = fds,
	                             .nfds = 3};
	int r = ctx->sp.spawn(ctx->sp.arg, &req, &proc);
	close(o[1]);
	close(e[1]);
	o[1] = e[1] = -1;
	if (r != 0) {
		tool_fail(res, "grep: rg failed: %s", al_strerror(r));
		goto out;
	}
	while (!oeof || !eeof) {
		struct pollfd pf[3] = {{.fd = oeof ? -1 : o[0], .events = POLLIN},
		                       {.fd = eeof ? -1 : e[0], .events = POLLIN},
		                       {.fd = ctx->cancel_fd, .events = POLLIN}};
		int left = tool_ms_left(deadline);
		if (ctx->cancelled || left == 0) {
			aborted = true;
			break;
		}
		int n = poll(pf, 3, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pf[2].revents != 0) {
			aborted = true;
			break;
		}
		if (pf[0].revents != 0) {
			ssize_t k = read(o[0], chunk, sizeof(chunk));
			if (k <= 0 && !(k < 0 && errno == EINTR))
				oeof = true;
			else if (k > 0) {
				(void)buf_add(&out, chunk, (size_t)k);
				if (out.len > TOOL_GREP_OUTPUT_LIMIT) {
					truncated = true;
					break;
				}
			}
		}
		if (pf[1].revents != 0) {
			ssize_t k = read(e[0], chunk, sizeof(chunk));
			if (k <= 0 && !(k < 0 && errno == EINTR))
				eeof = true;
			else if (k > 0 && err.len + (size_t)k <= GREP_ERR_MAX)
				(void)buf_add(&err, chunk, (size_t)k);
		}
	}
	if (truncated || aborted)
		ctx->sp.kill(ctx->sp.arg, proc);
	ctx->sp.reap(ctx->sp.arg, proc, &st);
	proc = NULL;
	if (aborted) {
		tool_fail(res, "grep: aborted");
	} else if (truncated) {
		size_t cut = TOOL_GREP_OUTPUT_LIMIT;
		/* Do not end on half a character. */
		size_t back = 0;
		while (back < 3 && cut - back > 0 &&
		       ((unsigned char)out.data[cut - back - 1] & 0xc0) == 0x80)
			back++;
		if (back < 3 && cut - back > 0 && (unsigned char)out.data[cut - back - 1] >= 0xc0)
			cut -= back + 1;
		(void)buf_add(&res->text, out.data, cut);
		(void)buf_addf(&res->text, "\n[output truncated at %d bytes]",
		               TOOL_GREP_OUTPUT_LIMIT);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		(void)buf_add(&res->text, out.data != NULL ? out.data : "", out.len);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 1) {
		(void)buf_add_str(&res->text, "no matches");
	} else if (err.len > 0) {
		tool_fail(res, "grep: rg failed: %s", err.data);
	} else if (WIFEXITED(st)) {
		tool_fail(res, "grep: rg failed: exit %d", WEXITSTATUS(st));
	} else {
		tool_fail(res, "grep: rg failed: exit null");
	}
out:
	if (proc != NULL) {
		ctx->sp.kill(ctx->sp.arg, proc);
		ctx->sp.reap(ctx->sp.arg, proc, NULL);
	}
	for (int i = 0; i < 2; i++) {
		if (o[i] >= 0)
			close(o[i]);
		if (e[i] >= 0)
			close(e[i]);
	}
	tool_env_free(env);
	buf_free(&out);
	buf_free(&err);
}

/* ---- built-in grep ---- */

#define GREP_CHILD_AS_MB 256     /* address space above what the child inherits */
#define GREP_CHILD_GRACE_MS 3000 /* past the search's own deadline, then SIGKILL */

struct grep_run {
	regex_t re;
	const char *base;
	struct buf *out;
	size_t hits;
	int64_t budget;
	uint64_t deadline;
	bool timed_out;
	bool full;
};

/* One hit line; false once the output budget is spent (the SDK's push()). */
static bool
grep_push(struct grep_run *g, const char *file, int64_t lineno, const char *line, size_t len)
{
	char num[24];
	int nl = snprintf(num, sizeof(num), "%lld", (long long)lineno);
	size_t flen = strlen(file);
	g->budget -= (int64_t)(flen + 1 + (size_t)nl + 1 + len) + 1;
	if (g->hits > 0)
		(void)buf_add(g->out, "\n", 1);
	g->hits++;
	if (g->budget < 0) {
		(void)buf_addf(g->out, "[output truncated at %d bytes]", TOOL_GREP_OUTPUT_LIMIT);
		g->full = true;
		return false;
	}
	(void)buf_addf(g->out, "%s:%s:", file, num);
	(void)buf_add(g->out, line, len);
	return true;
}

/* Code points, as the SDK measures lines (close enough to its UTF-16 units). */
static size_t
cp_len(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static bool
grep_line(struct grep_run *g, const char *file, int64_t lineno, struct buf *line)
{
	if (cp_len(line->data != NULL ? line->data : "", line->len) > GREP_MAX_LINE)
		return true;
	const char *s = line->data != NULL ? line->data : "";
	if (regexec(&g->re, s, 0, NULL, 0) != 0)
		return true;
	return grep_push(g, file, lineno, s, line->len);
}

/* Scans one file; false to stop the whole search. Lines end at \n, \r\n or \r (readline). */
static bool
grep_fd(struct grep_run *g, int fd, const char *file, struct tool_ctx *ctx)
{
	char chunk[65536];
	struct buf line;
	int64_t lineno = 0;
	bool cr = false, go = true;
	buf_init(&line, 1u << 20);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Binary content ends the file. */
		if (memchr(chunk, '\0', (size_t)n) != NULL) {
			buf_reset(&line);
			break;
		}
		for (ssize_t i = 0; i < n && go; i++) {
			char c = chunk[i];
			if (cr && c == '\n') {
				cr = false;
				continue;
			}
			cr = false;
			if (c == '\n' || c == '\r') {
				cr = c == '\r';
				lineno++;
				go = grep_line(g, file, lineno, &line);
				buf_reset(&line);
				continue;
			}
			/* An overlong line stops growing; it is skipped as too long anyway. */
			(void)buf_add(&line, &c, 1);
		}
		if (!go)
			break;
		if (ctx->cancelled || now_mono_ms() >= g->deadline) {
			g->timed_out = !ctx->cancelled;
			go = false;
			break;
		}
	}
	if (go && line.len > 0) {
		lineno++;
		go = grep_line(g, file, lineno, &line);
	}
	buf_free(&line);
	return go;
}

static bool
grep_file_cb(struct walk *w, int dirfd, const char *name)
{
	struct grep_run *g = w->arg;
	if (now_mono_ms() >= g->deadline) {
		g->timed_out = true;
		return false;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return true;
	char *file = walk_path(w, g->base, name);
	bool go = grep_fd(g, fd, file, w->ctx);
	free(file);
	close(fd);
	return go && !g->timed_out;
}

static void
grep_builtin_here(struct tool_ctx *ctx, const char *pattern, const char *search, const char *canon,
                  struct tool_res *res)
{
	struct grep_run g = {.base = search,
	                     .out = &res->text,
	                     .budget = TOOL_GREP_OUTPUT_LIMIT,
	                     .deadline = now_mono_ms() + TOOL_GREP_TIMEOUT_MS};
	int rc = regcomp(&g.re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc == REG_ESPACE) {
		tool_fail(res,
		          "grep: the pattern is too complex: compiling it needs more than %d MiB",
		          GREP_CHILD_AS_MB);
		return;
	}
	if (rc != 0) {
		char msg[256];
		regerror(rc, &g.re, msg, sizeof(msg));
		tool_fail(res, "grep: invalid regex: %s", msg);
		return;
	}
	int fd = canon != NULL ? tool_path_open(ctx, canon, O_RDONLY | O_NONBLOCK, 0)
	                       : openat(ctx->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		(void)grep_fd(&g, fd, search, ctx);
		close(fd);
	} else if (fd >= 0 && S_ISDIR(st.st_mode)) {
		struct walk w = {.ctx = ctx,
		                 .remaining = TOOL_WALK_MAX_ENTRIES,
		                 .file = grep_file_cb,
		                 .arg = &g};
		walk_dir(&w, fd);
	} else if (fd >= 0) {
		close(fd);
	}
	regfree(&g.re);
	if (ctx->cancelled) {
		tool_fail(res, "grep: aborted");
		return;
	}
	if (g.timed_out) {
		if (g.hits == 0) {
			tool_fail(res, "grep: timed out after %ds", TOOL_GREP_TIMEOUT_MS / 1000);
			return;
		}
		(void)buf_addf(&res->text, "\n[the search was cut short after %d ms]",
		               TOOL_GREP_TIMEOUT_MS);
	}
	if (g.hits == 0)
		(void)buf_add_str(&res->text, "no matches");
}

/* The model's regex is compiled and run in a child with hard limits, never in the worker:
 * glibc's regcomp expands bounded repetitions, so a 19-byte pattern like
 * (x{1,1000}){1,1000} takes seconds of CPU and gigabytes (issue 11, finding 4), and
 * ERE back-references make regexec exponential. The child gets GREP_CHILD_AS_MB of
 * address space above what it inherited and a CPU limit; the parent kills it at the
 * deadline or on cancel. Its result comes back as one is_error byte and the text. */

static void
grep_child_limits(void)
{
	char buf[128];
	uint64_t pages = 0;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = '\0';
		char *sp = strchr(buf, ' ');
		if (sp == NULL ||
		    parse_uint(buf, (size_t)(sp - buf), UINT64_MAX / 8192, &pages) != 0)
			pages = 0;
	}
	/* Without /proc the inherited size is unknown: the CPU and wall limits remain. */
	if (pages > 0) {
		uint64_t as = pages * (uint64_t)sysconf(_SC_PAGESIZE) +
		              (uint64_t)GREP_CHILD_AS_MB * 1024 * 1024;
		struct rlimit rl = {.rlim_cur = as, .rlim_max = as};
		(void)setrlimit(RLIMIT_AS, &rl);
	}
	/* soft = hard: SIGXCPU may be blocked in this thread's mask; SIGKILL is not */
	rlim_t cpu = TOOL_GREP_TIMEOUT_MS / 1000 + 2;
	struct rlimit rc = {.rlim_cur = cpu, .rlim_max = cpu}, core = {0, 0};
	(void)setrlimit(RLIMIT_CPU, &rc);
	(void)setrlimit(RLIMIT_CORE, &core);
}

static void
grep_builtin(struct tool_ctx *ctx, const char *pattern, const char *search, const char *canon,
             struct tool_res *res)
{
	int p[2];
	struct buf out;
	bool aborted = false, timed_out = false, eof = false;
	uint64_t deadline = now_mono_ms() + TOOL_GREP_TIMEOUT_MS + GREP_CHILD_GRACE_MS;
	char chunk[65536];

	if (pipe2(p, O_CLOEXEC) != 0) {
		tool_fail(res, "grep: cannot start the search: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		tool_fail(res, "grep: cannot start the search: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		/* The child of one thread of a threaded process: it only computes and writes,
		 * then _exits (glibc keeps malloc usable after fork). */
		close(p[0]);
		/* a fault (glibc's regcomp can crash when memory runs out) ends this child,
		 * never a handler the parent installed */
		static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
		for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			(void)signal(fatal[i], SIG_DFL);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		grep_child_limits();
		struct tool_res cr = {0};
		buf_init(&cr.text, TOOL_GREP_OUTPUT_LIMIT + 4096);
		grep_builtin_here(ctx, pattern, search, canon, &cr);
		char e = cr.is_error ? 1 : 0;
		bool ok = write(p[1], &e, 1) == 1;
		for (size_t off = 0; ok && off < cr.text.len;) {
			ssize_t k = write(p[1], cr.text.data + off, cr.text.len - off);
			if (k < 0 && errno == EINTR)
				continue;
			ok = k > 0;
			off += k > 0 ? (size_t)k : 0;
		}
		_exit(ok ? 0 : 1);
	}
	close(p[1]);
	buf_init(&out, TOOL_GREP_OUTPUT_LIMIT + 8192);
	while (!eof) {
		struct pollfd pf[2] = {{.fd = p[0], .events = POLLIN},
		                       {.fd = ctx->cancel_fd, .events = POLLIN}};
		int left = tool_ms_left(deadline);
		if (ctx->cancelled || left == 0) {
			aborted = ctx->cancelled;
			timed_out = !aborted;
			break;
		}
		int n = poll(pf, 2, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pf[1].revents != 0) {
			aborted = true;
			break;
		}
		if (pf[0].revents != 0) {
			ssize_t k = read(p[0], chunk, sizeof(chunk));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				eof = true;
			else if (buf_add(&out, chunk, (size_t)k) != 0)
				break; /* more than the child can produce: treat as a failure */
		}
	}
	close(p[0]);
	if (!eof)
		(void)kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (aborted) {
		tool_fail(res, "grep: aborted");
	} else if (timed_out) {
		tool_fail(res, "grep: timed out after %ds", TOOL_GREP_TIMEOUT_MS / 1000);
	} else if (eof && WIFEXITED(st) && WEXITSTATUS(st) == 0 && out.len >= 1) {
		(void)buf_add(&res->text, out.data + 1, out.len - 1);
		res->is_error = out.data[0] != 0;
	} else {
		/* killed at the CPU limit, out of memory outside regcomp (which says so
		 * itself), or a crash */
		tool_fail(res,
		          "grep: the search was stopped: the pattern needs more than the built-in "
		          "search's limits (%ds of CPU, %d MiB)",
		          TOOL_GREP_TIMEOUT_MS / 1000, GREP_CHILD_AS_MB);
	}
	buf_free(&out);
}

void
tool_grep_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *pattern = tool_in_str(in, "pattern");
	const char *p = tool_in_str(in, "path");
	char *canon = NULL, *rg = NULL;

	if (p != NULL && p[0] != '\0' && tool_path_resolve(ctx, p, &canon, res) != 0)
		goto out;
	const char *search = canon != NULL ? canon : ctx->workdir;
	if (!ctx->rg_disabled)
		rg = ctx->rg != NULL ? xstrdup(ctx->rg) : find_rg(ctx);
	if (rg != NULL)
		grep_rg(ctx, rg, pattern, search, res);
	else
		grep_builtin(ctx, pattern, search, canon, res);
out:
	free(canon);
	free(rg);
}
