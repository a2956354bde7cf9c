/* The session's memory stores on the worker's side (docs/worker/memory.md): each store's
 * copy in <workspace>/memory/<name>/, downloaded before the first tool call and synced
 * with the SDK worker's three-way rules. One request at a time on the worker's loop; every
 * file is reached from a held directory fd one component at a time, never through a
 * symlink the sandbox may have planted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "memsync.h"
#include "skill_unpack.h"
#include "util.h"
#include "worker.h"
#include "xalloc.h"

#define MEMSYNC_MAX_DEPTH 20
#define MEMSYNC_TMP ".airlock-memsync-"
#define MEMSYNC_LIST_RETRIES 3

/* ---- the decision table ---- */

static bool
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

enum memsync_action
memsync_decide(const char *local, const char *base, const char *remote)
{
	bool lch = !same(local, base), rch = !same(remote, base);
	if (!lch && !rch)
		return MEMSYNC_NONE;
	if (lch && rch) {
		if (same(local, remote))
			return remote == NULL ? MEMSYNC_NONE : MEMSYNC_ADOPT;
		return remote == NULL ? MEMSYNC_RECREATE : MEMSYNC_CONFLICT_PULL;
	}
	if (rch)
		return remote == NULL ? MEMSYNC_REMOVE_LOCAL : MEMSYNC_PULL;
	if (local == NULL)
		return MEMSYNC_DELETE;
	/* base NULL here means remote NULL too (unchanged): a new file */
	return base == NULL ? MEMSYNC_CREATE : MEMSYNC_UPDATE;
}

const char *
memsync_action_name(enum memsync_action a)
{
	static const char *const names[] = {"none",   "adopt",         "pull",
	                                    "remove", "create",        "update",
	                                    "delete", "conflict-pull", "recreate"};
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

bool
memsync_dir_name(const char *mount_path, const char *store_id, char *out, size_t len)
{
	const char *cands[2] = {NULL, store_id};
	if (mount_path != NULL) {
		const char *b = strrchr(mount_path, '/');
		cands[0] = b ? b + 1 : mount_path;
	}
	for (size_t k = 0; k < 2; k++) {
		const char *c = cands[k];
		size_t n = c ? strlen(c) : 0;
		bool ok =
		    n > 0 && n < len && n <= 128 && strcmp(c, ".") != 0 && strcmp(c, "..") != 0;
		for (size_t i = 0; ok && i < n; i++) {
			char ch = c[i];
			ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
		}
		if (ok) {
			memcpy(out, c, n + 1);
			return true;
		}
	}
	return false;
}

/* ---- state ---- */

struct mstore {
	char *id, *id_esc, *name;
	bool ro;
	int dfd;         /* its directory, -1 until downloaded */
	json_t *base;    /* rel -> {"id","sha"}: what both sides held at the last sync */
	json_t *refused; /* rel -> local sha the server refused (400/413): not sent again */
	json_t *missing; /* rel -> monotonic ms it was first seen missing */
	json_t *hashes;  /* rel -> {"k": inode, size, ctime; "h": its sha}: a pass hashes only
	                  * what changed */
	bool warned_full;
};

enum job { JOB_IDLE, JOB_DOWNLOAD, JOB_PASS };

struct memsync {
	struct worker *w;
	char *sid;
	const char *cred;
	int wsfd;
	char *ws; /* the workspace's host path (for the read-only roots) */
	struct mstore st[MEMSYNC_MAX_STORES];
	size_t n;

	enum job job;
	bool final, final_wanted, pending;
	size_t cur;     /* store index of the job */
	json_t *remote; /* rel -> {"id","sha"}: the pass's listing */
	size_t listed;
	json_t *ops; /* the pass's work for the current store */
	size_t op_i;
	unsigned retries;
	uint64_t t0; /* the store's download began (its log line says how long it took) */
	struct httpc_xfer *x;
	struct loop_timer *timer, *retry;
	uint64_t last_ms;
	memsync_done_fn *done;
	void *arg;
	memsync_done_fn *final_done;
	void *final_arg;
};

static void job_next_store(struct memsync *m);
static void list_page(struct memsync *m, const char *cursor);
static void run_ops(struct memsync *m);
static void plan(struct memsync *m);

/* ---- files, beneath held directory fds ---- */

/* "a/b/c" from a memory's "/a/b/c": no empty, "." or ".." segment, no NUL, bounded. */
static bool
rel_ok(const char *rel, size_t len)
{
	size_t depth = 0;
	if (len == 0 || len > 1024 || strlen(rel) != len)
		return false;
	for (const char *p = rel; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (++depth > MEMSYNC_MAX_DEPTH)
			return false;
		p += n + (e ? 1 : 0);
		if (e && *p == '\0')
			return false;
	}
	return strcmp(rel, MEMSYNC_MARKER) != 0 &&
	       strncmp(rel, MEMSYNC_TMP, strlen(MEMSYNC_TMP)) != 0;
}

/* The directory holding rel's last segment, opened (made when create) one component at a
 * time with O_NOFOLLOW; *leaf points into rel. */
static int
parent_open(int dfd, const char *rel, bool create, const char **leaf)
{
	char seg[1025];
	int cur = dup(dfd);
	if (cur < 0)
		return -errno;
	for (const char *p = rel;;) {
		const char *e = strchr(p, '/');
		if (e == NULL) {
			*leaf = p;
			return cur;
		}
		size_t n = (size_t)(e - p);
		if (n >= sizeof(seg)) {
			close(cur);
			return AL_E_TOOBIG;
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (create && mkdirat(cur, seg, 0755) != 0 && errno != EEXIST) {
			int r = -errno;
			close(cur);
			return r;
		}
		int nx = openat(cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int r = -errno;
		close(cur);
		if (nx < 0)
			return r;
		cur = nx;
		p = e + 1;
	}
}

/* Written whole under a temporary name and renamed over rel: a tool reading it meanwhile
 * sees the old or the new content, never half. */
static int
file_write(int dfd, const char *rel, const char *data, size_t len)
{
	const char *leaf;
	char tmp[64];
	unsigned char rnd[8];
	int pfd = parent_open(dfd, rel, true, &leaf), fd = -1, r;
	if (pfd < 0)
		return pfd;
	random_bytes(rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), MEMSYNC_TMP "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
	         rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if ((fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) <
	    0) {
		r = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t k = write(fd, data + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : AL_E_IO;
			unlinkat(pfd, tmp, 0);
			goto out;
		}
		off += (size_t)k;
	}
	if (renameat(pfd, tmp, pfd, leaf) != 0) {
		r = -errno;
		unlinkat(pfd, tmp, 0);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	close(pfd);
	return r;
}

/* rel's content (a regular file, no symlink anywhere on the way), at most max bytes:
 * AL_E_TOOBIG past that, AL_E_NOTFOUND when it is not there. */
static int
file_read(int dfd, const char *rel, size_t max, struct buf *out)
{
	const char *leaf;
	char chunk[16384];
	struct stat st;
	int pfd, fd = -1, r;
	buf_init(out, max);
	pfd = parent_open(dfd, rel, false, &leaf);
	if (pfd < 0)
		return pfd == -ENOENT || pfd == -ENOTDIR || pfd == -ELOOP ? AL_E_NOTFOUND : pfd;
	fd = openat(pfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(pfd);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? AL_E_NOTFOUND : -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = AL_E_NOTFOUND;
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, chunk, sizeof(chunk));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		if (buf_add(out, chunk, (size_t)k) != 0) {
			r = AL_E_TOOBIG;
			goto out;
		}
	}
	r = 0;
out:
	close(fd);
	return r;
}

/* A new open of the directory for a walk: a dup() would share the held fd's offset, and
 * the next walk would start where this one ended (at the end: every file "missing"). */
static int
dir_reopen(int dfd)
{
	return openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void
sha_of(const struct buf *b, char hex[65])
{
	sha256_hex(b->data ? b->data : "", b->len, hex);
}

/* Every regular file beneath dfd as rel -> sha256 (too large: "-", left alone); false
 * when the walk was cut short (then nothing missing may count as deleted). */
static bool
scan(int dfd, const char *prefix, int depth, json_t *out, struct mstore *s, const char *sid)
{
	bool whole = true;
	long long now_s = (long long)time(NULL);
	int fd = dir_reopen(dfd);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return false;
	}
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		const char *nm = e->d_name;
		struct stat st;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		if (depth == 0 && strcmp(nm, MEMSYNC_MARKER) == 0)
			continue;
		if (strncmp(nm, MEMSYNC_TMP, strlen(MEMSYNC_TMP)) == 0)
			continue;
		if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		char *rel = prefix[0] ? xasprintf("%s/%s", prefix, nm) : xstrdup(nm);
		if (S_ISDIR(st.st_mode) && depth + 1 < MEMSYNC_MAX_DEPTH) {
			int sub =
			    openat(dirfd(d), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || !scan(sub, rel, depth + 1, out, s, sid))
				whole = false;
			if (sub >= 0)
				close(sub);
		} else if (S_ISREG(st.st_mode)) {
			if (json_object_size(out) >= MEMSYNC_MAX_MEMORIES) {
				if (!s->warned_full)
					log_warn(
					    "memory store copy holds more files than a store may; "
					    "the rest are not synced",
					    "session_id", sid, "memory_store_id", s->id);
				s->warned_full = true;
				free(rel);
				whole = false;
				break;
			}
			struct buf b;
			char hex[65], key[96];
			json_t *c = json_object_get(s->hashes, rel);
			snprintf(key, sizeof(key), "%llu:%lld:%lld.%09ld",
			         (unsigned long long)st.st_ino, (long long)st.st_size,
			         (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
			if (same(json_string_value(json_object_get(c, "k")), key)) {
				json_object_set(out, rel, json_object_get(c, "h"));
				free(rel);
				continue;
			}
			int r = file_read(dirfd(d), nm, MEMSYNC_MAX_CONTENT, &b);
			if (r == 0 || r == AL_E_TOOBIG) {
				if (r == 0)
					sha_of(&b, hex);
				json_object_set_new(out, rel, json_string(r == 0 ? hex : "-"));
				/* File times tick coarsely (a jiffy): a write in the same tick as
				 * this stat would keep the key. Only a change older than that tick
				 * is remembered (git's "racily clean" rule). */
				if (now_s > (long long)st.st_ctim.tv_sec + 1)
					json_object_set_new(s->hashes, rel,
					                    json_pack("{s:s,s:s}", "k", key, "h",
					                              r == 0 ? hex : "-"));
				else
					json_object_del(s->hashes, rel);
			} else {
				whole = false;
			}
			buf_free(&b);
		}
		free(rel);
	}
	closedir(d);
	return whole;
}

/* A read_only store's copy: files 0444 and directories 0555, so a tool's write fails
 * inside the sandbox (its user owns the copy and could chmod it back, but nothing of a
 * read_only store is ever sent: docs/worker/memory.md). unseal undoes it for our own
 * writes and the removal. */
static void
seal(int dfd, bool on, int depth)
{
	int fd = dir_reopen(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!on)
		fchmod(dfd, 0755);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < MEMSYNC_MAX_DEPTH) {
			int sub = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				seal(sub, on, depth + 1);
				close(sub);
			}
		} else if (S_ISREG(st.st_mode)) {
			int f = openat(dirfd(d), e->d_name,
			               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (f >= 0) {
				fchmod(f, on ? 0444 : 0644);
				close(f);
			}
		}
	}
	closedir(d);
	if (on)
		fchmod(dfd, 0555);
}

/* ---- setup ---- */

int
memsync_new(struct worker *w, const char *session_id, const char *cred, const char *workspace,
            const json_t *resources, struct memsync **out)
{
	struct memsync *m = NULL;
	size_t i;
	json_t *r;
	int rc;
	*out = NULL;
	json_array_foreach(resources, i, r)
	{
		const char *t = json_string_value(json_object_get(r, "type"));
		const char *id = json_string_value(json_object_get(r, "memory_store_id"));
		const char *acc = json_string_value(json_object_get(r, "access"));
		char name[129];
		if (t == NULL || strcmp(t, "memory_store") != 0)
			continue;
		if (id == NULL ||
		    !memsync_dir_name(json_string_value(json_object_get(r, "mount_path")), id, name,
		                      sizeof(name))) {
			rc = AL_E_INVAL;
			goto fail;
		}
		if (m == NULL) {
			m = xcalloc(1, sizeof(*m));
			m->w = w;
			m->sid = xstrdup(session_id);
			m->cred = cred;
			m->wsfd = -1;
		}
		if (m->n == MEMSYNC_MAX_STORES) {
			rc = AL_E_TOOBIG;
			goto fail;
		}
		for (size_t k = 0; k < m->n; k++)
			if (strcmp(m->st[k].name, name) == 0) {
				rc = AL_E_CONFLICT;
				goto fail;
			}
		struct mstore *s = &m->st[m->n++];
		s->id = xstrdup(id);
		s->id_esc = httpc_escape(id);
		s->name = xstrdup(name);
		/* anything but an explicit read_write is treated as read-only */
		s->ro = acc == NULL || strcmp(acc, "read_write") != 0;
		s->dfd = -1;
		s->base = json_object();
		s->refused = json_object();
		s->missing = json_object();
		s->hashes = json_object();
	}
	if (m == NULL)
		return 0;
	m->ws = xstrdup(workspace);
	m->wsfd = open(workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->wsfd < 0) {
		rc = -errno;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	memsync_free(m);
	return rc;
}

void
memsync_free(struct memsync *m)
{
	if (m == NULL)
		return;
	httpc_cancel(m->x);
	loop_timer_cancel(m->w->loop, m->timer);
	loop_timer_cancel(m->w->loop, m->retry);
	for (size_t i = 0; i < m->n; i++) {
		struct mstore *s = &m->st[i];
		if (s->dfd >= 0)
			close(s->dfd);
		free(s->id);
		free(s->id_esc);
		free(s->name);
		json_decref(s->base);
		json_decref(s->refused);
		json_decref(s->missing);
		json_decref(s->hashes);
	}
	if (m->wsfd >= 0)
		close(m->wsfd);
	json_decref(m->remote);
	json_decref(m->ops);
	free(m->sid);
	free(m->ws);
	free(m);
}

char *
memsync_read_only_dir(const struct memsync *m, size_t i)
{
	if (m == NULL || i >= m->n || !m->st[i].ro)
		return NULL;
	return xasprintf("%s/memory/%s", m->ws, m->st[i].name);
}

bool
memsync_busy(const struct memsync *m)
{
	return m != NULL && m->job != JOB_IDLE;
}

/* The store's directory made afresh (what an earlier item left is gone: the store is the
 * truth at the start), with the SDK's marker. */
static int
store_dir_fresh(struct memsync *m, struct mstore *s)
{
	char marker[160];
	int mfd, r;
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	if (mkdirat(m->wsfd, "memory", 0755) != 0 && errno != EEXIST)
		return -errno;
	if ((mfd = openat(m->wsfd, "memory", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	int old = openat(mfd, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (old >= 0) { /* an earlier item's copy, maybe sealed */
		seal(old, false, 0);
		close(old);
	}
	if ((r = skill_remove_at(mfd, s->name)) != 0)
		goto out;
	if (mkdirat(mfd, s->name, 0755) != 0) {
		r = -errno;
		goto out;
	}
	if ((s->dfd = openat(mfd, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	int n = snprintf(marker, sizeof(marker), "version 1\n%s", s->id);
	r = file_write(s->dfd, MEMSYNC_MARKER, marker, (size_t)n);
	json_object_clear(s->base);
	json_object_clear(s->missing);
out:
	close(mfd);
	return r;
}

/* The marker as written: anything else (a wiped folder) is downloaded again, never
 * taken for a mass delete. */
static bool
marker_ok(struct mstore *s)
{
	struct buf b;
	char want[160];
	bool ok;
	if (s->dfd < 0)
		return false;
	int n = snprintf(want, sizeof(want), "version 1\n%s", s->id);
	ok = file_read(s->dfd, MEMSYNC_MARKER, sizeof(want), &b) == 0 && b.len == (size_t)n &&
	     memcmp(b.data, want, (size_t)n) == 0;
	buf_free(&b);
	return ok;
}

/* ---- jobs ---- */

static void
job_end(struct memsync *m, int err)
{
	memsync_done_fn *done = m->done;
	void *arg = m->arg;
	bool was_final = m->final;
	m->job = JOB_IDLE;
	m->done = NULL;
	m->last_ms = now_mono_ms();
	json_decref(m->remote);
	json_decref(m->ops);
	m->remote = m->ops = NULL;
	if (was_final) {
		/* the copies go with the item, as the SDK's worker removes its mounts */
		int mfd =
		    openat(m->wsfd, "memory", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		for (size_t i = 0; i < m->n; i++) {
			if (m->st[i].dfd >= 0) {
				seal(m->st[i].dfd, false, 0);
				close(m->st[i].dfd);
			}
			m->st[i].dfd = -1;
			if (mfd >= 0 && skill_remove_at(mfd, m->st[i].name) != 0)
				log_warn("cannot remove a memory store's copy", "session_id",
				         m->sid, "memory_store_id", m->st[i].id);
		}
		if (mfd >= 0) {
			close(mfd);
			unlinkat(m->wsfd, "memory", AT_REMOVEDIR); /* only when empty */
		}
	}
	if (done)
		done(arg, err);
	if (!was_final && m->final_wanted) {
		m->final_wanted = false;
		memsync_final(m, m->final_done, m->final_arg);
	} else if (!was_final && m->pending) {
		m->pending = false;
		memsync_kick(m); /* the tool calls during this pass: within the interval */
	}
}

static void
on_retry(struct loop *l, void *arg)
{
	struct memsync *m = arg;
	m->retry = NULL;
	list_page(m, NULL);
}

static void
on_list_done(void *arg, int status, int err, json_t *body)
{
	struct memsync *m = arg;
	struct mstore *s = &m->st[m->cur];
	json_t *data = json_object_get(body, "data"), *it;
	size_t i;
	m->x = NULL;
	if (status < 200 || status >= 300 || !json_is_array(data)) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		if (wapi_retryable(status, err) && ++m->retries <= MEMSYNC_LIST_RETRIES) {
			/* from the first page again: a half-read listing is not a listing */
			m->retry = loop_timer_add(m->w->loop, 1000u * m->retries, on_retry, m);
			return;
		}
		log_error(m->job == JOB_DOWNLOAD
		              ? "cannot download a memory store"
		              : "cannot list a memory store; not synced this time",
		          "session_id", m->sid, "memory_store_id", s->id, "status", st, "error",
		          wapi_error_text(err, body));
		if (m->job == JOB_DOWNLOAD) {
			job_end(m, status == 404 ? AL_E_NOTFOUND : AL_E_IO);
			return;
		}
		m->cur++;
		job_next_store(m);
		return;
	}
	json_array_foreach(data, i, it)
	{
		const char *t = json_string_value(json_object_get(it, "type"));
		const char *p = json_string_value(json_object_get(it, "path"));
		const char *id = json_string_value(json_object_get(it, "id"));
		const char *sha = json_string_value(json_object_get(it, "content_sha256"));
		json_t *c = json_object_get(it, "content");
		if (t == NULL || strcmp(t, "memory") != 0 || p == NULL || id == NULL ||
		    sha == NULL || p[0] != '/' ||
		    !rel_ok(p + 1, json_string_length(json_object_get(it, "path")) - 1))
			continue;
		if (m->listed++ >= MEMSYNC_MAX_MEMORIES)
			break;
		if (m->job == JOB_DOWNLOAD) {
			int r = json_is_string(c) ? file_write(s->dfd, p + 1, json_string_value(c),
			                                       json_string_length(c))
			                          : AL_E_PROTO;
			if (r != 0) {
				log_warn("cannot write a memory into the store's copy",
				         "session_id", m->sid, "memory_store_id", s->id, "path", p,
				         "error", al_strerror(r));
				continue;
			}
			json_object_set_new(s->base, p + 1,
			                    json_pack("{s:s,s:s}", "id", id, "sha", sha));
		} else {
			json_object_set_new(m->remote, p + 1,
			                    json_pack("{s:s,s:s}", "id", id, "sha", sha));
		}
	}
	const char *next = json_string_value(json_object_get(body, "next_page"));
	if (next != NULL && next[0] != '\0' && m->listed < MEMSYNC_MAX_MEMORIES) {
		list_page(m, next);
		return;
	}
	if (m->job == JOB_DOWNLOAD) {
		char num[24], ms[24];
		if (s->ro)
			seal(s->dfd, true, 0);
		snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(now_mono_ms() - m->t0));
		snprintf(num, sizeof(num), "%zu", json_object_size(s->base));
		log_info("memory store downloaded", "session_id", m->sid, "memory_store_id", s->id,
		         "dir", s->name, "memories", num, "access",
		         s->ro ? "read_only" : "read_write", "ms", ms);
		m->cur++;
		job_next_store(m);
		return;
	}
	if (s->ro)
		seal(s->dfd, false, 0); /* for the pulls; sealed again when they are done */
	plan(m);
	run_ops(m);
}

static void
list_page(struct memsync *m, const char *cursor)
{
	struct mstore *s = &m->st[m->cur];
	char *pg = cursor ? httpc_escape(cursor) : NULL;
	if (cursor == NULL) { /* a listing starts (or starts again) */
		m->listed = 0;
		if (m->job == JOB_DOWNLOAD)
			json_object_clear(s->base);
		else
			json_object_clear(m->remote);
	}
	char *path =
	    xasprintf("/v1/memory_stores/%s/memories?view=%s&limit=%s%s%s", s->id_esc,
	              m->job == JOB_DOWNLOAD ? "full" : "basic",
	              m->job == JOB_DOWNLOAD ? "20" : "100", pg ? "&page=" : "", pg ? pg : "");
	struct wapi_req r = {.cred = m->cred,
	                     .method = "GET",
	                     .path = path,
	                     .timeout_ms = 60000,
	                     .done = on_list_done,
	                     .arg = m};
	if (wapi_call(m->w, &r, &m->x) != 0) {
		m->x = NULL;
		on_list_done(m, 0, AL_E_IO, NULL);
	}
	free(pg);
	free(path);
}

/* Plans the current store's pass: the local scan against the baseline and the listing. */
static void
plan(struct memsync *m)
{
	struct mstore *s = &m->st[m->cur];
	json_t *local = json_object(), *all = json_object(), *v;
	const char *rel;
	uint64_t now = now_mono_ms();
	size_t deletes = 0, cap = json_object_size(s->base) / 4;
	cap = cap > 50 ? 50 : cap;
	cap = cap < 8 ? 8 : cap;
	bool whole = scan(s->dfd, "", 0, local, s, m->sid);
	void *tmp;
	json_object_foreach_safe(s->hashes, tmp, rel, v)
	{
		if (json_object_get(local, rel) == NULL)
			json_object_del(s->hashes, rel);
	}
	json_object_update(all, s->base);
	json_object_update(all, m->remote);
	json_object_update(all, local);
	json_object_foreach(all, rel, v)
	{
		const char *l = json_string_value(json_object_get(local, rel));
		json_t *b = json_object_get(s->base, rel), *rm = json_object_get(m->remote, rel);
		const char *bs = json_string_value(json_object_get(b, "sha"));
		const char *rs = json_string_value(json_object_get(rm, "sha"));
		if (l != NULL && strcmp(l, "-") == 0) {
			if (!same(json_string_value(json_object_get(s->refused, rel)), "-"))
				log_warn("a memory file is larger than a memory may be; not synced",
				         "session_id", m->sid, "memory_store_id", s->id, "path",
				         rel);
			json_object_set_new(s->refused, rel, json_string("-"));
			continue;
		}
		if (l != NULL)
			json_object_del(s->missing, rel);
		enum memsync_action a = memsync_decide(l, bs, rs);
		if (a == MEMSYNC_RECREATE && s->ro) {
			log_warn("a memory deleted in the store was edited here; kept, unsent "
			         "(read_only store)",
			         "session_id", m->sid, "memory_store_id", s->id, "path", rel);
			json_object_del(s->base, rel);
			continue;
		}
		if ((a == MEMSYNC_CREATE || a == MEMSYNC_UPDATE || a == MEMSYNC_DELETE) && s->ro)
			continue; /* a read_only store is never written back */
		if ((a == MEMSYNC_CREATE || a == MEMSYNC_UPDATE || a == MEMSYNC_RECREATE) &&
		    same(json_string_value(json_object_get(s->refused, rel)), l))
			continue;
		if (a == MEMSYNC_DELETE) {
			/* gone for a while, and seen gone by a walk that saw everything: a file
			 * being replaced is not a delete. At the end the sandbox is gone, so
			 * what is missing then stays missing. */
			json_t *t = json_object_get(s->missing, rel);
			if (!whole)
				continue;
			if (t == NULL) {
				json_object_set_new(s->missing, rel, json_integer((json_int_t)now));
				if (!m->final)
					continue;
			} else if (!m->final && now - (uint64_t)json_integer_value(t) <
			                            MEMSYNC_DELETE_AFTER_MS) {
				continue;
			}
			if (deletes++ >= cap)
				continue;
		}
		if (a == MEMSYNC_NONE)
			continue;
		if (a == MEMSYNC_CONFLICT_PULL)
			log_warn("a memory changed both here and in the store; the store's version "
			         "wins",
			         "session_id", m->sid, "memory_store_id", s->id, "path", rel);
		if (a == MEMSYNC_RECREATE)
			log_info("a memory deleted in the store was edited here; creating it again "
			         "from the file",
			         "session_id", m->sid, "memory_store_id", s->id, "path", rel);
		json_array_append_new(
		    m->ops, json_pack("{s:i,s:s,s:s?,s:s?,s:s?,s:s?}", "a", (int)a, "rel", rel,
		                      "mid", json_string_value(json_object_get(rm ? rm : b, "id")),
		                      "base", bs, "remote", rs, "local", l));
	}
	json_decref(all);
	json_decref(local);
}

static void
op_done(struct memsync *m)
{
	m->op_i++;
	run_ops(m);
}

static void
on_op_done(void *arg, int status, int err, json_t *body)
{
	struct memsync *m = arg;
	struct mstore *s = &m->st[m->cur];
	json_t *op = json_array_get(m->ops, m->op_i);
	const char *rel = json_string_value(json_object_get(op, "rel"));
	enum memsync_action a = (enum memsync_action)json_integer_value(json_object_get(op, "a"));
	char st[24];
	m->x = NULL;
	wapi_status_str(status, st, sizeof(st));
	if (status >= 200 && status < 300) {
		const char *id = json_string_value(json_object_get(body, "id"));
		const char *sha = json_string_value(json_object_get(body, "content_sha256"));
		json_t *c = json_object_get(body, "content");
		if (a == MEMSYNC_DELETE) {
			json_object_del(s->base, rel);
			json_object_del(s->missing, rel);
		} else if (id != NULL && sha != NULL) {
			if (a == MEMSYNC_PULL || a == MEMSYNC_CONFLICT_PULL) {
				int r = json_is_string(c)
				            ? file_write(s->dfd, rel, json_string_value(c),
				                         json_string_length(c))
				            : AL_E_PROTO;
				if (r != 0) {
					log_warn("cannot write a memory into the store's copy",
					         "session_id", m->sid, "memory_store_id", s->id,
					         "path", rel, "error", al_strerror(r));
					op_done(m);
					return;
				}
			}
			json_object_set_new(s->base, rel,
			                    json_pack("{s:s,s:s}", "id", id, "sha", sha));
		}
	} else if (a == MEMSYNC_DELETE && status == 404) {
		json_object_del(s->base, rel); /* gone already: the same end */
	} else if (status == 400 || status == 413) {
		/* not sent again until it changes */
		log_warn("the store refused a memory file; not sent again until it changes",
		         "session_id", m->sid, "memory_store_id", s->id, "path", rel, "status", st,
		         "error", wapi_error_message(body));
		json_object_set(s->refused, rel, json_object_get(op, "local"));
	} else if (status == 409) {
		log_warn(
		    "a memory changed in the store since it was read here; the store's version "
		    "wins",
		    "session_id", m->sid, "memory_store_id", s->id, "path", rel, "error",
		    wapi_error_message(body));
	} else {
		log_warn("memory sync request failed; tried again at the next pass", "session_id",
		         m->sid, "memory_store_id", s->id, "path", rel, "action",
		         memsync_action_name(a), "status", st, "error", wapi_error_text(err, body));
	}
	op_done(m);
}

static void
run_ops(struct memsync *m)
{
	struct mstore *s = &m->st[m->cur];
	json_t *op, *body = NULL;
	struct buf content = {0};
	char *path = NULL, *mid = NULL, *bsha = NULL;
	const char *method = "GET";

	for (;;) {
		if (m->op_i >= json_array_size(m->ops)) {
			if (s->ro && !m->final)
				seal(s->dfd, true, 0);
			m->cur++;
			job_next_store(m);
			return;
		}
		op = json_array_get(m->ops, m->op_i);
		const char *rel = json_string_value(json_object_get(op, "rel"));
		const char *id = json_string_value(json_object_get(op, "mid"));
		const char *base = json_string_value(json_object_get(op, "base"));
		enum memsync_action a =
		    (enum memsync_action)json_integer_value(json_object_get(op, "a"));
		if (a == MEMSYNC_ADOPT) {
			json_t *rm = json_object_get(m->remote, rel);
			json_object_set(s->base, rel, rm);
			m->op_i++;
			continue;
		}
		if (a == MEMSYNC_REMOVE_LOCAL) {
			/* only while it still holds what the store deleted: an edit since the
			 * walk makes it the only copy (the next pass creates it again) */
			const char *leaf;
			char hex[65] = "";
			if (file_read(s->dfd, rel, MEMSYNC_MAX_CONTENT, &content) == 0)
				sha_of(&content, hex);
			buf_free(&content);
			int pfd = same(hex, base) ? parent_open(s->dfd, rel, false, &leaf) : -1;
			if (pfd >= 0) {
				unlinkat(pfd, leaf, 0);
				close(pfd);
			}
			json_object_del(s->base, rel);
			m->op_i++;
			continue;
		}
		if (m->final && (a == MEMSYNC_PULL || a == MEMSYNC_CONFLICT_PULL)) {
			m->op_i++; /* the copy goes now: nothing to fetch it for */
			continue;
		}
		mid = id ? httpc_escape(id) : NULL;
		if (a == MEMSYNC_CREATE || a == MEMSYNC_UPDATE || a == MEMSYNC_RECREATE) {
			int r = file_read(s->dfd, rel, MEMSYNC_MAX_CONTENT, &content);
			/* NULL for bytes that are not UTF-8: the API takes text only */
			json_t *js =
			    r == 0 ? json_stringn(content.data ? content.data : "", content.len)
			           : NULL;
			if (r == 0 && js == NULL)
				r = AL_E_INVAL;
			if (js == NULL) {
				if (r == AL_E_INVAL &&
				    !same(json_string_value(json_object_get(s->refused, rel)),
				          json_string_value(json_object_get(op, "local"))))
					log_warn("a memory file is not UTF-8 text; not synced",
					         "session_id", m->sid, "memory_store_id", s->id,
					         "path", rel);
				if (r == AL_E_INVAL)
					json_object_set(s->refused, rel,
					                json_object_get(op, "local"));
				buf_free(&content);
				free(mid);
				mid = NULL;
				m->op_i++;
				continue;
			}
			/* what goes is what was just read: the sha the op was planned on may be
			 * older, and the refusal mark must name this content */
			char hex[65];
			sha_of(&content, hex);
			json_object_set_new(op, "local", json_string(hex));
			buf_free(&content);
			method = "POST";
			if (a != MEMSYNC_UPDATE) {
				char *p = xasprintf("/%s", rel);
				body = json_pack("{s:s,s:o}", "path", p, "content", js);
				free(p);
				path = xasprintf("/v1/memory_stores/%s/memories", s->id_esc);
			} else {
				body = json_pack("{s:o,s:{s:s,s:s}}", "content", js, "precondition",
				                 "type", "content_sha256", "content_sha256", base);
				path =
				    xasprintf("/v1/memory_stores/%s/memories/%s", s->id_esc, mid);
			}
		} else if (a == MEMSYNC_DELETE) {
			method = "DELETE";
			bsha = httpc_escape(base);
			path =
			    xasprintf("/v1/memory_stores/%s/memories/%s?expected_content_sha256=%s",
			              s->id_esc, mid, bsha);
		} else { /* pull */
			path =
			    xasprintf("/v1/memory_stores/%s/memories/%s?view=full", s->id_esc, mid);
		}
		break;
	}
	struct wapi_req r = {.cred = m->cred,
	                     .method = method,
	                     .path = path,
	                     .body = body,
	                     .timeout_ms = 60000,
	                     .done = on_op_done,
	                     .arg = m};
	int rc = wapi_call(m->w, &r, &m->x);
	json_decref(body);
	free(path);
	free(mid);
	free(bsha);
	if (rc != 0) {
		m->x = NULL;
		on_op_done(m, 0, AL_E_IO, NULL);
	}
}

static void
job_next_store(struct memsync *m)
{
	while (m->cur < m->n) {
		struct mstore *s = &m->st[m->cur];
		m->retries = 0;
		if (m->job == JOB_DOWNLOAD) {
			m->t0 = now_mono_ms();
			int r = store_dir_fresh(m, s);
			if (r != 0) {
				log_error("cannot make a memory store's directory", "session_id",
				          m->sid, "memory_store_id", s->id, "dir", s->name, "error",
				          al_strerror(r));
				job_end(m, r);
				return;
			}
			list_page(m, NULL);
			return;
		}
		if (!marker_ok(s)) {
			if (m->final) { /* nothing to push from a wiped copy */
				m->cur++;
				continue;
			}
			log_warn("a memory store's copy lost its marker; downloading it again",
			         "session_id", m->sid, "memory_store_id", s->id);
			if (store_dir_fresh(m, s) != 0) {
				m->cur++;
				continue;
			}
			/* the next pass finds every memory missing here against an empty baseline
			 * and the listing, so it pulls them all: a re-download, never deletes */
			m->cur++;
			continue;
		}
		json_decref(m->remote);
		json_decref(m->ops);
		m->remote = json_object();
		m->ops = json_array();
		m->op_i = 0;
		m->listed = 0;
		list_page(m, NULL);
		return;
	}
	job_end(m, 0);
}

/* on_list_done for a pass reaches run_ops through plan */
static void
pass_start(struct memsync *m)
{
	m->job = JOB_PASS;
	m->cur = 0;
	job_next_store(m);
}

void
memsync_download(struct memsync *m, memsync_done_fn *done, void *arg)
{
	m->job = JOB_DOWNLOAD;
	m->done = done;
	m->arg = arg;
	m->cur = 0;
	job_next_store(m);
}

static void
on_kick_timer(struct loop *l, void *arg)
{
	struct memsync *m = arg;
	m->timer = NULL;
	memsync_kick(m);
}

void
memsync_kick(struct memsync *m)
{
	if (m == NULL || m->final || m->final_wanted)
		return;
	if (m->job != JOB_IDLE) {
		m->pending = true;
		return;
	}
	uint64_t now = now_mono_ms(), due = m->last_ms + MEMSYNC_INTERVAL_MS;
	if (now < due) {
		if (m->timer == NULL)
			m->timer = loop_timer_add(m->w->loop, due - now, on_kick_timer, m);
		return;
	}
	loop_timer_cancel(m->w->loop, m->timer);
	m->timer = NULL;
	m->pending = false;
	m->done = NULL;
	pass_start(m);
}

void
memsync_final(struct memsync *m, memsync_done_fn *done, void *arg)
{
	loop_timer_cancel(m->w->loop, m->timer);
	m->timer = NULL;
	if (m->job != JOB_IDLE) {
		m->final_wanted = true;
		m->final_done = done;
		m->final_arg = arg;
		return;
	}
	m->final = true;
	m->done = done;
	m->arg = arg;
	pass_start(m);
}
