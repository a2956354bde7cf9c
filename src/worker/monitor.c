/* The privileged monitor and its client API. The monitor accepts requests only from the
 * fixed table below, validates every field (workspaces must lie inside workspace_root),
 * and treats any malformed message as a compromised client: it kills the client, destroys
 * every sandbox and exits. It never crashes on input. Wire format: docs/worker/monitor.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "monitor.h"
#include "sandbox_int.h"
#include "util.h"
#include "xalloc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

enum {
	MON_HELLO = 100, /* monitor -> client: i32 err */
	MON_CREATE,      /* str session_id, str workspace */
	MON_CREATED,     /* i32 err, u32 sandbox_id; fd pidfd */
	MON_SPAWN,       /* u32 sandbox_id, u32 fdmask, str path, strv argv, strv env, str cwd;
	                  * fds */
	MON_SPAWNED,     /* i32 err, i32 pid; fd status */
	MON_KILL,        /* u32 sandbox_id, i32 pid, i32 sig */
	MON_DESTROY,     /* u32 sandbox_id */
	MON_RESULT,      /* i32 err */
	MON_REMOVE,      /* str session_id: remove its workspace (session_dirs) */
	MON_EGRESS,      /* u32 sandbox_id: the proxy's listener in its netns (RESULT + fd) */
};

#define MAX_SANDBOXES 1024
#define MAX_SPARES 8
#define MAX_REMOVERS 8
#define MAX_MOUNTED 16
/* Background work (the next spare, cgroup removal) waits for this much quiet on the
 * socket, so it never delays the spawn that follows a create. */
#define IDLE_MS 20

/* ---------------------------------------------------------------- monitor side */

struct slot {
	uint32_t id;  /* 0 = free */
	char sid[65]; /* its session (a live session's workspace is never removed) */
	struct sandbox *sb;
};

struct mon {
	const struct monitor_config *cfg;
	char root[PATH_MAX]; /* realpath of workspace_root */
	int rootfd;          /* workspace_root, opened once at start: every workspace is
	                      * resolved beneath it, never by its path again */
	int sessfd;          /* session_dirs: <root>/sessions, root-owned 0711, made at start */
	uint64_t quota_mb;   /* session_dirs: each workspace its own fs of this size; 0 none */
	char mounted[MAX_MOUNTED][65]; /* sessions whose workspace is mounted now */
	size_t nmounted;
	int sock;
	struct {
		int pidfd; /* a child emptying <sessions>/name as its owner */
		char name[96];
	} removers[MAX_REMOVERS];
	size_t nremovers;
	unsigned rm_seq;
	struct slot slots[MAX_SANDBOXES];
	uint32_t next_id;
	struct sandbox_spare *spares[MAX_SPARES];
	size_t nspares, want_spares;
	unsigned spare_losses; /* in a row; 3 turn spares off (creates report the cause) */
	uint64_t quiet_since;  /* monotonic ms of the last request */
};

/* Request flags: SB = names a live sandbox (first field u32 id). */
#define RQ_SB 1u

/* The request table: what parses, and how many fds each type may carry. */
static const struct {
	uint32_t type;
	unsigned flags;
	size_t max_fds;
} requests[] = {
    {MON_CREATE, 0, 0},   {MON_SPAWN, RQ_SB, SANDBOX_MAX_CHILD_FDS},
    {MON_KILL, RQ_SB, 0}, {MON_DESTROY, RQ_SB, 0},
    {MON_REMOVE, 0, 0},   {MON_EGRESS, RQ_SB, 0},
};

static const char *req_argv[SANDBOX_MSG_MAX_STRV], *req_env[SANDBOX_MSG_MAX_STRV];

int
monitor_request_parse(struct sandbox_msg *rq, struct monitor_request *out)
{
	size_t i, k = 0;
	const char *rel;
	unsigned flags = 0;
	bool known = false;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < SANDBOX_MAX_CHILD_FDS; i++)
		out->fds[i] = -1;
	if (sandbox_msg_get_u32(rq, &out->type) != 0)
		return AL_E_PROTO;
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		if (requests[i].type == out->type) {
			known = true;
			flags = requests[i].flags;
			if (rq->nfds > requests[i].max_fds)
				return AL_E_PROTO;
		}
	if (!known)
		return AL_E_PROTO;
	if ((flags & RQ_SB) && sandbox_msg_get_u32(rq, &out->sandbox_id) != 0)
		return AL_E_PROTO;
	switch (out->type) {
	case MON_CREATE:
		if (sandbox_msg_get_str(rq, &out->session_id) != 0 ||
		    sandbox_msg_get_str(rq, &out->workspace) != 0)
			return AL_E_PROTO;
		break;
	case MON_SPAWN:
		if (sandbox_msg_get_u32(rq, &out->fdmask) != 0 ||
		    out->fdmask >= (1u << SANDBOX_MAX_CHILD_FDS) ||
		    sandbox_msg_get_str(rq, &rel) != 0 ||
		    (rel[0] != '\0' && !sandbox_path_valid(rel)) ||
		    sandbox_msg_get_strv(rq, req_argv, SANDBOX_MSG_MAX_STRV) != 0 ||
		    req_argv[0] == NULL ||
		    sandbox_msg_get_strv(rq, req_env, SANDBOX_MSG_MAX_STRV) != 0 ||
		    sandbox_msg_get_str(rq, &out->cwd) != 0)
			return AL_E_PROTO;
		out->path = rel;
		out->argv = req_argv;
		out->env = req_env;
		/* One fd per mask bit, in order, no more and no fewer. */
		for (i = 0; i < SANDBOX_MAX_CHILD_FDS; i++)
			if (out->fdmask & (1u << i)) {
				if (k >= rq->nfds || rq->fds[k] < 0)
					return AL_E_PROTO;
				out->fds[i] = rq->fds[k++];
			}
		if (k != rq->nfds)
			return AL_E_PROTO;
		break;
	case MON_KILL:
		if (sandbox_msg_get_i32(rq, &out->pid) != 0 ||
		    sandbox_msg_get_i32(rq, &out->sig) != 0 || out->sig < 0 || out->sig >= NSIG)
			return AL_E_PROTO;
		break;
	case MON_REMOVE:
		if (sandbox_msg_get_str(rq, &out->session_id) != 0)
			return AL_E_PROTO;
		break;
	default: /* MON_DESTROY, MON_EGRESS: the id only */
		break;
	}
	return sandbox_msg_done(rq) ? 0 : AL_E_PROTO;
}

struct handler {
	uint32_t type;
	int (*fn)(struct mon *mo, struct slot *s, const struct monitor_request *rq,
	          struct sandbox_msg *rp, int *rfd);
};

static struct slot *
slot_find(struct mon *mo, uint32_t id)
{
	size_t i;
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (mo->slots[i].id == id && id != 0)
			return &mo->slots[i];
	return NULL;
}

/* Size-capped workspaces stay mounted after their session's sandbox goes (the worker
 * then clears setuid bits there, and the host path shows the files between work items)
 * until another session's create, REMOVE or the monitor's exit: at most MAX_MOUNTED, the
 * one session of a worker in practice. */
static void
mount_drop(struct mon *mo, size_t i)
{
	int r = sandbox_ws_unmount(mo->sessfd, mo->mounted[i]);
	if (r != 0)
		log_warn("monitor: cannot unmount a session's workspace", "session_id",
		         mo->mounted[i], "error", al_strerror(r));
	memcpy(mo->mounted[i], mo->mounted[--mo->nmounted], sizeof(mo->mounted[0]));
}

static bool
sid_live(struct mon *mo, const char *sid)
{
	for (size_t i = 0; i < MAX_SANDBOXES; i++)
		if (mo->slots[i].id != 0 && strcmp(mo->slots[i].sid, sid) == 0)
			return true;
	return false;
}

/* Unmounts every noted workspace but keep's whose session has no sandbox (all: keep
 * NULL and everything is dead). */
static void
mounts_trim(struct mon *mo, const char *keep)
{
	for (size_t i = mo->nmounted; i-- > 0;)
		if ((keep == NULL || strcmp(mo->mounted[i], keep) != 0) &&
		    !sid_live(mo, mo->mounted[i]))
			mount_drop(mo, i);
}

static void
mount_note(struct mon *mo, const char *sid)
{
	for (size_t i = 0; i < mo->nmounted; i++)
		if (strcmp(mo->mounted[i], sid) == 0)
			return;
	if (mo->nmounted < MAX_MOUNTED)
		snprintf(mo->mounted[mo->nmounted++], sizeof(mo->mounted[0]), "%s", sid);
}

/* The workspace the client names, as an fd: resolved once beneath the root fd held since
 * start, never through a symlink (any component), "..", a magic link or another mount. A
 * rename racing us (the drop uid may own directories inside the root) yields either a
 * directory beneath the root or a refusal, and the fd is what gets chowned and bound:
 * nothing is resolved by path again. */
static int
workspace_open(struct mon *mo, const char *ws, int *wfd)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
	                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	size_t rl = strlen(mo->root);
	const char *rel;
	long fd;

	*wfd = -1;
	if (!sandbox_path_valid(ws))
		return AL_E_INVAL;
	if (strncmp(ws, mo->root, rl) == 0 && ws[rl] == '/' && ws[rl + 1] != '\0')
		rel = ws + rl + 1;
	else
		return AL_E_PERM;
	fd = syscall(SYS_openat2, mo->rootfd, rel, &how, sizeof(how));
	if (fd < 0)
		return errno == ELOOP || errno == EXDEV || errno == ENOTDIR ? AL_E_PERM : -errno;
	*wfd = (int)fd;
	return 0;
}

static int
h_create(struct mon *mo, struct slot *unused, const struct monitor_request *rq,
         struct sandbox_msg *rp, int *rfd)
{
	const char *sid = rq->session_id, *ws = rq->workspace;
	size_t i;
	struct slot *s = NULL;
	bool warm = false;
	int r, wfd = -1;

	if (!sandbox_id_valid(sid) || ws[0] != '/') {
		r = AL_E_INVAL;
		goto reply;
	}
	/* The workspace is bound read-write into the sandbox (and chowned): only real
	 * directories beneath workspace_root, never "/" or /etc by way of a symlink. With
	 * session_dirs, exactly <root>/sessions/<session id>, made here if missing (the same
	 * session finds its files again; sessions/ is root's, so nobody else names it). */
	if (mo->sessfd >= 0) {
		char want[PATH_MAX];
		snprintf(want, sizeof(want), "%s/sessions/%s", mo->root, sid);
		if (strcmp(ws, want) != 0)
			r = AL_E_PERM;
		else if ((r = sandbox_ws_open(mo->sessfd, sid,
		                              SANDBOX_WS_CREATE | SANDBOX_WS_MOUNTED)) >= 0)
			wfd = r, r = 0;
		/* Size-capped: the session's own filesystem over its dir (made at its first
		 * create, mounted again at each later one). */
		if (r == 0 && mo->quota_mb > 0) {
			int root;
			mounts_trim(mo, sid);
			if ((r = sandbox_ws_quota_mount(mo->sessfd, sid, wfd, mo->quota_mb,
			                                &root)) == 0) {
				close(wfd);
				wfd = root;
				mount_note(mo, sid);
			} else {
				log_error("monitor: cannot mount the session's workspace",
				          "session_id", sid, "error", al_strerror(r));
			}
		}
	} else {
		r = workspace_open(mo, ws, &wfd);
	}
	if (r != 0) {
		if (r == AL_E_PERM)
			log_warn("monitor: workspace outside workspace_root refused", "session_id",
			         sid);
		goto reply;
	}
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (mo->slots[i].id == 0) {
			s = &mo->slots[i];
			break;
		}
	if (s == NULL) {
		r = AL_E_AGAIN;
		goto reply;
	}
	/* A warm spare if one is there (the oldest: the most likely to be set up); it is
	 * taken off the list first, so no second session can ever get it. */
	if (mo->nspares > 0) {
		struct sandbox_spare *sp = mo->spares[0];
		memmove(&mo->spares[0], &mo->spares[1], --mo->nspares * sizeof(mo->spares[0]));
		warm = true;
		r = sandbox_spare_claim_fd(sp, sid, wfd, ws, &s->sb);
		if (r == 0)
			mo->spare_losses = 0;
		if (r == AL_E_CLOSED) { /* it had died: a cold one */
			warm = false;
			r = sandbox_create_fd(mo->cfg->profile, sid, wfd, ws, &s->sb);
		}
	} else {
		r = sandbox_create_fd(mo->cfg->profile, sid, wfd, ws, &s->sb);
	}
	if (r != 0)
		goto reply;
	if (++mo->next_id == 0)
		mo->next_id = 1;
	s->id = mo->next_id;
	snprintf(s->sid, sizeof(s->sid), "%s", sid);
	*rfd = sandbox_pidfd(s->sb);
	log_info("monitor: sandbox created", "session_id", sid, "spare", warm ? "true" : "false");
reply:
	if (wfd >= 0)
		close(wfd);
	(void)sandbox_msg_put_u32(rp, MON_CREATED);
	(void)sandbox_msg_put_u32(rp, (uint32_t)r);
	(void)sandbox_msg_put_u32(rp, r == 0 ? s->id : 0);
	return 0;
}

static int
h_spawn(struct mon *mo, struct slot *s, const struct monitor_request *rq, struct sandbox_msg *rp,
        int *rfd)
{
	struct sandbox_proc *p = NULL;
	int r = sandbox_spawn_fds(s->sb, rq->path[0] ? rq->path : NULL, rq->argv, rq->env,
	                          rq->cwd[0] ? rq->cwd : NULL, rq->fds, SANDBOX_MAX_CHILD_FDS, &p);
	(void)sandbox_msg_put_u32(rp, MON_SPAWNED);
	(void)sandbox_msg_put_u32(rp, (uint32_t)r);
	(void)sandbox_msg_put_u32(rp, r == 0 ? (uint32_t)sandbox_proc_pid(p) : 0);
	if (r == 0) {
		*rfd = sandbox_proc_steal_fd(p);
		sandbox_proc_free(p);
	}
	return 0;
}

static int
h_kill(struct mon *mo, struct slot *s, const struct monitor_request *rq, struct sandbox_msg *rp,
       int *rfd)
{
	(void)sandbox_msg_put_u32(rp, MON_RESULT);
	(void)sandbox_msg_put_u32(rp, (uint32_t)sandbox_kill_pid(s->sb, rq->pid, rq->sig));
	return 0;
}

static void
slot_free(struct mon *mo, struct slot *s)
{
	sandbox_destroy(s->sb);
	s->sb = NULL;
	s->id = 0;
	s->sid[0] = '\0';
}

static int
h_destroy(struct mon *mo, struct slot *s, const struct monitor_request *rq, struct sandbox_msg *rp,
          int *rfd)
{
	slot_free(mo, s);
	(void)sandbox_msg_put_u32(rp, MON_RESULT);
	(void)sandbox_msg_put_u32(rp, 0);
	return 0;
}

/* The parent side of a removal: the child emptied the dir (or failed); the entry goes
 * when empty, else it stays for the next start (its name marks it). */
static void
remover_reap(struct mon *mo, size_t i, bool wait)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	while (waitid((idtype_t)P_PIDFD, (id_t)mo->removers[i].pidfd, &si,
	              WEXITED | (wait ? 0 : WNOHANG)) != 0 &&
	       errno == EINTR)
		;
	if (si.si_pid == 0)
		return; /* still running */
	if (si.si_code != CLD_EXITED || si.si_status != 0 ||
	    unlinkat(mo->sessfd, mo->removers[i].name, AT_REMOVEDIR) != 0)
		log_warn("monitor: a workspace could not be removed completely", "dir",
		         mo->removers[i].name);
	close(mo->removers[i].pidfd);
	mo->removers[i] = mo->removers[--mo->nremovers];
}

/* Empties <sessions>/name in a child that runs as the dir's owner (root deletes nothing
 * in a tree others wrote); asynchronous, so a big tree never stalls the worker's calls. */
static void
remover_start(struct mon *mo, const char *name)
{
	int pidfd = -1, dfd;
	pid_t pid;
	if (mo->nremovers == MAX_REMOVERS)
		remover_reap(mo, 0, true);
	if ((dfd = sandbox_ws_open(mo->sessfd, name, false)) < 0) {
		log_warn("monitor: cannot open a workspace to remove", "dir", name, "error",
		         al_strerror(dfd));
		return;
	}
	pid = (pid_t)syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, NULL, &pidfd, NULL, NULL);
	if (pid == 0) {
		if (dup3(dfd, 3, 0) < 0)
			_exit(1);
		syscall(SYS_close_range, 4, ~0U, 0);
		/* As the dir's owner, which the claim made it (the sandbox's uid, or with
		 * run_as the worker's): never as root. A dir no claim reached is root's and
		 * empty: nothing to do here. */
		if (geteuid() == 0) {
			struct stat st;
			if (fstat(3, &st) != 0)
				_exit(1);
			if (st.st_uid == 0)
				_exit(0);
			if (setgroups(0, NULL) != 0 ||
			    setresgid(st.st_gid, st.st_gid, st.st_gid) != 0 ||
			    setresuid(st.st_uid, st.st_uid, st.st_uid) != 0)
				_exit(1);
		}
		_exit(sandbox_ws_empty(3) == 0 ? 0 : 1);
	}
	close(dfd);
	if (pid < 0) {
		log_warn("monitor: cannot start a workspace removal", "error", strerror(errno));
		return;
	}
	mo->removers[mo->nremovers].pidfd = pidfd;
	snprintf(mo->removers[mo->nremovers].name, sizeof(mo->removers[0].name), "%s", name);
	mo->nremovers++;
}

/* REMOVE: the session's workspace is renamed aside at once (the session id names a fresh,
 * empty workspace from now on) and emptied in the background. */
static int
h_remove(struct mon *mo, struct slot *unused, const struct monitor_request *rq,
         struct sandbox_msg *rp, int *rfd)
{
	const char *sid = rq->session_id;
	char aside[96];
	size_t i;
	int r = 0;

	if (mo->sessfd < 0)
		r = AL_E_UNSUPPORTED;
	else if (!sandbox_id_valid(sid))
		r = AL_E_INVAL;
	for (i = 0; r == 0 && i < MAX_SANDBOXES; i++)
		if (mo->slots[i].id != 0 && strcmp(mo->slots[i].sid, sid) == 0)
			r = AL_E_CONFLICT;
	if (r == 0) {
		/* its mount (a mount point cannot be renamed), or one a crash left; then its
		 * image */
		for (i = mo->nmounted; i-- > 0;)
			if (strcmp(mo->mounted[i], sid) == 0)
				mount_drop(mo, i);
		(void)sandbox_ws_unmount(mo->sessfd, sid);
		snprintf(aside, sizeof(aside), ".rm-%s-%d-%u", sid, (int)getpid(), ++mo->rm_seq);
		if (renameat(mo->sessfd, sid, mo->sessfd, aside) != 0)
			r = errno == ENOENT ? 0 : -errno;
		else
			remover_start(mo, aside);
		if (r == 0)
			r = sandbox_ws_image_remove(mo->sessfd, sid);
	}
	(void)sandbox_msg_put_u32(rp, MON_RESULT);
	(void)sandbox_msg_put_u32(rp, (uint32_t)r);
	return 0;
}

/* EGRESS: a TCP listener on 127.0.0.1:MONITOR_EGRESS_PORT made inside the sandbox's
 * network namespace, for the worker to accept on from outside (docs/worker/egress.md).
 * The namespace keeps only `lo`: this socket is its one way out. Made here because
 * only the monitor may enter the namespace; it returns to its own before anything else
 * happens (a monitor left in a sandbox's netns would make the next spares there). */
static int
egress_listener(int pidfd, int *out)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(MONITOR_EGRESS_PORT),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1, r = 0;
	if (self < 0)
		return -errno;
	if (setns(pidfd, CLONE_NEWNET) != 0) {
		r = -errno;
		goto out;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0)
		r = -errno;
	if (setns(self, CLONE_NEWNET) != 0) {
		log_error("monitor: cannot return to its own network namespace", "error",
		          strerror(errno));
		abort();
	}
out:
	close(self);
	if (r != 0 && fd >= 0)
		close(fd);
	if (r == 0)
		*out = fd;
	return r;
}

static int
h_egress(struct mon *mo, struct slot *s, const struct monitor_request *rq, struct sandbox_msg *rp,
         int *rfd)
{
	int r = egress_listener(sandbox_pidfd(s->sb), rfd);
	if (r != 0)
		log_warn("monitor: cannot open the egress listener in the sandbox", "session_id",
		         s->sid, "error", al_strerror(r));
	(void)sandbox_msg_put_u32(rp, MON_RESULT);
	(void)sandbox_msg_put_u32(rp, (uint32_t)r);
	return 0;
}

static const struct handler handlers[] = {
    {MON_CREATE, h_create},   {MON_SPAWN, h_spawn},   {MON_KILL, h_kill},
    {MON_DESTROY, h_destroy}, {MON_REMOVE, h_remove}, {MON_EGRESS, h_egress},
};

/* One request. AL_E_PROTO: malformed (the caller ends the client); AL_E_CLOSED: EOF. */
static int
serve_one(struct mon *mo, struct sandbox_msg *rq, struct sandbox_msg *rp)
{
	struct monitor_request req;
	const struct handler *h = NULL;
	struct slot *s = NULL;
	int r, rfd = -1;
	size_t i;

	if ((r = sandbox_msg_recv(mo->sock, rq)) != 0)
		return r;
	if ((r = monitor_request_parse(rq, &req)) != 0)
		return r;
	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].type == req.type)
			h = &handlers[i];
	if (h == NULL)
		return AL_E_PROTO;
	buf_reset(&rp->b);
	if (req.type != MON_CREATE && req.type != MON_REMOVE &&
	    ((s = slot_find(mo, req.sandbox_id)) == NULL || s->sb == NULL)) {
		/* A sandbox that already died is a normal race, not a protocol error. */
		(void)sandbox_msg_put_u32(rp, req.type == MON_SPAWN ? MON_SPAWNED : MON_RESULT);
		(void)sandbox_msg_put_u32(rp, (uint32_t)AL_E_NOTFOUND);
		if (req.type == MON_SPAWN)
			(void)sandbox_msg_put_u32(rp, 0);
		return sandbox_msg_send(mo->sock, rp, NULL, 0);
	}
	if ((r = h->fn(mo, s, &req, rp, &rfd)) != 0)
		return r;
	r = sandbox_msg_send(mo->sock, rp, rfd >= 0 ? &rfd : NULL, rfd >= 0 ? 1 : 0);
	if (rfd >= 0 && (req.type == MON_SPAWN || req.type == MON_EGRESS))
		close(rfd); /* the status fd and the listener now live in the client; the pidfd
		             * stays ours */
	return r;
}

static void sessions_sweep(struct mon *mo, bool removals);

static void
destroy_all(struct mon *mo)
{
	size_t i;
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (mo->slots[i].sb != NULL)
			slot_free(mo, &mo->slots[i]);
	mounts_trim(mo, NULL);
	sessions_sweep(mo, false);
	for (i = 0; i < mo->nspares; i++)
		sandbox_spare_free(mo->spares[i]);
	mo->nspares = 0;
	mo->want_spares = 0; /* nothing new after the end */
	(void)sandbox_gc(true);
	while (mo->nremovers > 0)
		remover_reap(mo, mo->nremovers - 1, true);
}

static void
spare_drop(struct mon *mo, size_t i)
{
	sandbox_spare_free(mo->spares[i]);
	memmove(&mo->spares[i], &mo->spares[i + 1], (--mo->nspares - i) * sizeof(mo->spares[0]));
}

/* One piece of background work, done when the client is quiet: the next spare first
 * (sessions wait for it), then cgroup removal. Returns whether more is left. */
static bool
idle_work(struct mon *mo)
{
	int r;
	if (mo->nspares < mo->want_spares) {
		struct sandbox_spare *sp;
		if ((r = sandbox_spare_new(mo->cfg->profile, &sp)) != 0) {
			/* Creates would fail the same way and say so; stop retrying. */
			log_warn("monitor: cannot prepare a spare sandbox", "error",
			         al_strerror(r));
			mo->want_spares = 0;
		} else {
			mo->spares[mo->nspares++] = sp;
		}
	} else if (sandbox_gc(false) > 0) {
		return true;
	}
	return mo->nspares < mo->want_spares;
}

static int
child_status(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0 && errno == EINTR)
		;
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

static void __attribute__((noreturn)) monitor_main(struct mon *mo, pid_t child, int r_start)
{
	struct sandbox_msg rq, rp;
	sigset_t ss;
	int sfd, cfd, r;
	bool sock_open = true, gc_left = false;

	cfd = (int)syscall(SYS_pidfd_open, child, 0);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGQUIT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (cfd < 0 || sfd < 0) {
		kill(child, SIGKILL);
		_exit(1);
	}
	signal(SIGPIPE, SIG_IGN);
	sandbox_msg_init(&rq);
	sandbox_msg_init(&rp);
	(void)sandbox_msg_put_u32(&rp, MON_HELLO);
	(void)sandbox_msg_put_u32(&rp, (uint32_t)r_start);
	(void)sandbox_msg_send(mo->sock, &rp, NULL, 0);
	if (r_start != 0)
		sock_open = false;
	/* The first spare right away: the worker's first session is likely to come before
	 * the socket was ever quiet for long. */
	mo->want_spares = mo->cfg->spares < 0            ? 0
	                  : mo->cfg->spares == 0         ? 1
	                  : mo->cfg->spares > MAX_SPARES ? MAX_SPARES
	                                                 : (size_t)mo->cfg->spares;
	if (sock_open)
		(void)idle_work(mo);

	for (;;) {
		struct pollfd p[3 + MAX_SPARES + MAX_SANDBOXES + MAX_REMOVERS];
		size_t n = 3, i, nsp, nsb;
		int timeout = -1, pr;
		bool more = mo->nspares < mo->want_spares;
		p[0] = (struct pollfd){sock_open ? mo->sock : -1, POLLIN, 0};
		p[1] = (struct pollfd){sfd, POLLIN, 0};
		p[2] = (struct pollfd){cfd, POLLIN, 0};
		/* Spares report set-up (or failure, or death) on their ctl. */
		for (i = 0; i < mo->nspares; i++)
			p[n++] = (struct pollfd){sandbox_spare_fd(mo->spares[i]), POLLIN, 0};
		nsp = n;
		for (i = 0; i < MAX_SANDBOXES; i++)
			if (mo->slots[i].sb != NULL)
				p[n++] = (struct pollfd){sandbox_pidfd(mo->slots[i].sb), POLLIN, 0};
		/* Workspace removals report their end on their pidfd (not looked at below:
		 * every turn reaps the finished ones). */
		nsb = n;
		for (i = 0; i < mo->nremovers; i++)
			p[n++] = (struct pollfd){mo->removers[i].pidfd, POLLIN, 0};
		if (sock_open && (more || gc_left)) {
			uint64_t now = now_mono_ms(), due = mo->quiet_since + IDLE_MS;
			timeout = now >= due ? 0 : (int)(due - now);
		}
		if ((pr = poll(p, n, timeout)) < 0 && errno != EINTR)
			break;
		for (i = mo->nremovers; i-- > 0;)
			remover_reap(mo, i, false);
		if (pr == 0) {
			gc_left = idle_work(mo) || sandbox_gc(false) > 0;
			continue;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				kill(child,
				     (int)si.ssi_signo); /* graceful stop is the worker's job */
		}
		if (p[2].revents & POLLIN) {
			r = child_status(cfd);
			destroy_all(mo);
			_exit(r);
		}
		/* A spare that failed or died goes (the next quiet turn makes another). */
		for (i = nsp; i-- > 3;)
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR) &&
			    (r = sandbox_spare_wait(mo->spares[i - 3], 0)) != 0) {
				log_warn("monitor: spare sandbox lost", "error", al_strerror(r));
				spare_drop(mo, i - 3);
				if (++mo->spare_losses >= 3) {
					log_warn("monitor: spares off after 3 losses in a row");
					mo->want_spares = 0;
				}
			}
		/* A sandbox whose pid 1 died (wall clock): free its host artefacts now; the
		 * client learns it from its fds or AL_E_NOTFOUND. */
		for (i = nsp; i < nsb; i++)
			if (p[i].revents & POLLIN) {
				size_t k;
				for (k = 0; k < MAX_SANDBOXES; k++)
					if (mo->slots[k].sb &&
					    sandbox_pidfd(mo->slots[k].sb) == p[i].fd) {
						slot_free(mo, &mo->slots[k]);
						gc_left = true;
					}
			}
		if (sock_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			r = serve_one(mo, &rq, &rp);
			sandbox_msg_reset(&rq);
			mo->quiet_since = now_mono_ms();
			gc_left = true; /* a destroy, or a claim: look again when quiet */
			if (r == AL_E_CLOSED || r == -EPIPE || r == -ECONNRESET) {
				/* The client let go (monitor_free or exit): nothing may outlive it.
				 */
				destroy_all(mo);
				close(mo->sock);
				sock_open = false;
			} else if (r != 0) {
				log_error("monitor: malformed request; killing the worker", "error",
				          al_strerror(r));
				kill(child, SIGKILL);
				(void)child_status(cfd);
				destroy_all(mo);
				_exit(MONITOR_EXIT_PROTO);
			}
		}
	}
	kill(child, SIGKILL);
	destroy_all(mo);
	_exit(1);
}

/* ---------------------------------------------------------------- client side */

struct monitor {
	int sock;
	bool dead;
	struct {
		uint32_t id;
		int pidfd;
	} sbs[MAX_SANDBOXES];
	struct sandbox_msg m;
};

/* Whether uid/gid (no supplementary groups: drop_privileges clears them) may write dir. */
static bool
writable_by(const struct stat *dir, uid_t uid, gid_t gid)
{
	if (dir->st_uid == uid)
		return dir->st_mode & S_IWUSR;
	if (dir->st_gid == gid)
		return dir->st_mode & S_IWGRP;
	return dir->st_mode & S_IWOTH;
}

/* The drop user must not be able to rename the root's entry or any above it (swap it for
 * a symlink between two starts, or under the file tools): every ancestor of root is
 * either not writable by it, or sticky with the entry below owned by someone else. ACLs
 * are not looked at. AL_E_PERM names the directory in the log. */
static int
root_ancestors_check(const char *root, uid_t uid, gid_t gid)
{
	char path[PATH_MAX];
	struct stat dst, est;
	size_t n = strlen(root), i;
	int dfd = -1, efd, r = 0;

	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, root, n + 1);
	if ((dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	for (i = 1; i <= n && r == 0; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		/* entry = the last component, parent = dfd */
		const char *ent = strrchr(path, '/') + 1;
		if (fstat(dfd, &dst) != 0 || fstatat(dfd, ent, &est, AT_SYMLINK_NOFOLLOW) != 0) {
			r = -errno;
			break;
		}
		if (writable_by(&dst, uid, gid) &&
		    !((dst.st_mode & S_ISVTX) && est.st_uid != uid && dst.st_uid != uid)) {
			log_error("monitor: the worker's user may rename the workspace root or a "
			          "directory above it (its parent is writable by that user)",
			          "path", path);
			r = AL_E_PERM;
			break;
		}
		if ((efd = openat(dfd, ent, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = -errno;
			break;
		}
		close(dfd);
		dfd = efd;
		path[i] = i == n ? '\0' : '/';
	}
	close(dfd);
	return r;
}

/* <root>/sessions: made if missing, root's and 0711 (the worker reaches its sessions'
 * dirs, only the monitor names them), opened once like the root. */
static int
sessions_open(struct mon *mo)
{
	struct stat pre;
	bool existed = fstatat(mo->rootfd, "sessions", &pre, AT_SYMLINK_NOFOLLOW) == 0;
	int fd = sandbox_ws_open(mo->rootfd, "sessions", SANDBOX_WS_CREATE);
	if (fd < 0) {
		log_error("monitor: cannot open the workspace root's sessions dir", "root",
		          mo->root, "error", al_strerror(fd));
		return fd;
	}
	struct stat before;
	bool had = existed && fstat(fd, &before) == 0;
	if ((geteuid() == 0 && fchown(fd, 0, 0) != 0) || fchmod(fd, 0711) != 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	/* a change to a directory in the operator's workdir is said, not made silently */
	if (had && ((geteuid() == 0 && (before.st_uid != 0 || before.st_gid != 0)) ||
	            (before.st_mode & 07777) != 0711)) {
		char was[64];
		snprintf(was, sizeof(was), "uid %u gid %u mode %04o", (unsigned)before.st_uid,
		         (unsigned)before.st_gid, (unsigned)(before.st_mode & 07777));
		log_info("monitor: changed the workspace root's sessions dir", "root", mo->root,
		         "now", geteuid() == 0 ? "uid 0 gid 0 mode 0711" : "mode 0711", "was", was);
	}
	mo->sessfd = fd;
	return 0;
}

/* At start (removals): removals a previous monitor left unfinished (renamed aside,
 * .rm-*) start again, and mounts a killed one left go. At exit: every session's mount
 * goes (the noted ones went already; this catches any beyond MAX_MOUNTED). */
static void
sessions_sweep(struct mon *mo, bool removals)
{
	int fd;
	DIR *d;
	struct dirent *e;
	if (mo->sessfd < 0 || (fd = fcntl(mo->sessfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, ".rm-", 4) == 0 && strlen(e->d_name) < 96) {
			if (removals)
				remover_start(mo, e->d_name);
		} else if (e->d_name[0] != '.' && (removals || mo->quota_mb > 0)) {
			(void)sandbox_ws_unmount(mo->sessfd, e->d_name);
		}
	closedir(d);
}

static int
drop_privileges(const struct passwd *pw)
{
	if (setgroups(0, NULL) != 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
		return -errno;
	if (setresuid(0, 0, 0) == 0) /* must be impossible now */
		return AL_E_INTERNAL;
	return 0;
}

int
monitor_start(const struct monitor_config *cfg, struct monitor **out)
{
	static struct mon mo;
	struct passwd pwbuf, *pw = NULL;
	char pwmem[4096];
	int sv[2], r;
	pid_t parent = getpid(), pid;
	struct monitor *m;
	uint32_t type;
	int32_t err;

	*out = NULL;
	if (cfg->profile == NULL || cfg->workspace_root == NULL)
		return AL_E_INVAL;
	if (sandbox_profile_check(cfg->profile, NULL) != 0)
		return AL_E_INVAL;
	memset(&mo, 0, sizeof(mo));
	mo.cfg = cfg;
	if (realpath(cfg->workspace_root, mo.root) == NULL)
		return -errno;
	if (strcmp(mo.root, "/") == 0)
		return AL_E_INVAL;
	if (geteuid() == 0 && !cfg->keep_root && cfg->drop_ids) {
		memset(&pwbuf, 0, sizeof(pwbuf));
		pwbuf.pw_uid = cfg->drop_uid;
		pwbuf.pw_gid = cfg->drop_gid;
		pw = &pwbuf;
		if (pw->pw_uid == 0 || pw->pw_gid == 0)
			return AL_E_INVAL;
		if ((r = root_ancestors_check(mo.root, pw->pw_uid, pw->pw_gid)) != 0)
			return r;
	} else if (geteuid() == 0 && !cfg->keep_root) {
		const char *u = cfg->drop_user ? cfg->drop_user : "nobody";
		if (getpwnam_r(u, &pwbuf, pwmem, sizeof(pwmem), &pw) != 0 || pw == NULL)
			return AL_E_NOTFOUND;
		if (pw->pw_uid == 0)
			return AL_E_INVAL;
		if ((r = root_ancestors_check(mo.root, pw->pw_uid, pw->pw_gid)) != 0)
			return r;
	}
	mo.sessfd = -1;
	if ((mo.rootfd = open(mo.root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (cfg->session_dirs && (r = sessions_open(&mo)) != 0)
		goto fail;
	if (cfg->session_dirs && cfg->workspace_mb > 0) {
		if (geteuid() != 0)
			r = -EPERM;
		else
			r = sandbox_ws_quota_probe();
		if (r == 0)
			mo.quota_mb = cfg->workspace_mb;
		else
			log_warn(
			    "monitor: no size-capped workspaces here (root, /dev/loop-control and "
			    "mkfs.ext4 are needed): a session can fill the workdir's filesystem",
			    "error", al_strerror(r));
		r = 0;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		r = -errno;
		goto fail;
	}
	if ((pid = fork()) < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid > 0) {
		/* The monitor: keep nothing of the worker's (sockets, files) but stdio, the
		 * socket (3), the root (4) and its sessions/ (5). */
		int keep[3] = {sv[0], mo.rootfd, mo.sessfd}, tmp[3] = {-1, -1, -1};
		close(sv[1]);
		for (int k = 0; k < 3; k++) /* above 5 first, so they never collide */
			if (keep[k] >= 0 && (tmp[k] = fcntl(keep[k], F_DUPFD_CLOEXEC, 6)) < 0)
				_exit(1);
		for (int k = 0; k < 3; k++)
			if (tmp[k] >= 0 && dup3(tmp[k], 3 + k, O_CLOEXEC) < 0)
				_exit(1);
		syscall(SYS_close_range, 6, ~0U, 0);
		mo.sock = 3;
		mo.rootfd = 4;
		mo.sessfd = mo.sessfd >= 0 ? 5 : -1;
		r = sandbox_sweep(cfg->profile->state_dir);
		if (r == AL_E_CONFLICT)
			log_error("monitor: another worker holds the state dir's worker.lock",
			          "state_dir", cfg->profile->state_dir);
		else if (r != 0)
			log_error("monitor: sandbox sweep failed", "state_dir",
			          cfg->profile->state_dir, "error", al_strerror(r));
		else
			sessions_sweep(&mo, true);
		monitor_main(&mo, pid, r);
	}

	/* The worker. */
	close(sv[0]);
	close(mo.rootfd);
	if (mo.sessfd >= 0)
		close(mo.sessfd);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (pw != NULL && (r = drop_privileges(pw)) != 0) {
		log_error("worker: cannot drop privileges", "error", al_strerror(r));
		_exit(1);
	}
	/* A uid change clears the parent-death signal: set it again, and re-check that the
	 * monitor did not die in between. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	m = xcalloc(1, sizeof(*m));
	m->sock = sv[1];
	sandbox_msg_init(&m->m);
	r = sandbox_msg_recv(m->sock, &m->m);
	if (r == 0 && (sandbox_msg_get_u32(&m->m, &type) != 0 || type != MON_HELLO ||
	               sandbox_msg_get_i32(&m->m, &err) != 0))
		r = AL_E_PROTO;
	if (r == 0)
		r = err;
	if (r != 0) {
		monitor_free(m);
		return r;
	}
	*out = m;
	return 0;
fail:
	close(mo.rootfd);
	if (mo.sessfd >= 0)
		close(mo.sessfd);
	return r;
}

/* Sends m->m, receives the reply into m->m and checks its type. */
static int
call(struct monitor *m, const int *fds, size_t nfds, uint32_t want)
{
	uint32_t type;
	int r;
	if (m->dead)
		return AL_E_CLOSED;
	if ((r = sandbox_msg_send(m->sock, &m->m, fds, nfds)) != 0 ||
	    (r = sandbox_msg_recv(m->sock, &m->m)) != 0) {
		m->dead = true;
		return AL_E_CLOSED;
	}
	if (sandbox_msg_get_u32(&m->m, &type) != 0 || type != want) {
		/* The monitor is trusted; a bad reply is a bug. Stop using it, never crash. */
		m->dead = true;
		return AL_E_PROTO;
	}
	return 0;
}

static void
begin(struct monitor *m, uint32_t type)
{
	sandbox_msg_reset(&m->m);
	(void)sandbox_msg_put_u32(&m->m, type);
}

int
monitor_client_create(struct monitor *m, const char *session_id, const char *workspace,
                      uint32_t *sandbox_id)
{
	int32_t err;
	uint32_t id;
	int r, fd;
	size_t i;
	begin(m, MON_CREATE);
	if ((r = sandbox_msg_put_str(&m->m, session_id)) != 0 ||
	    (r = sandbox_msg_put_str(&m->m, workspace)) != 0)
		return r;
	if ((r = call(m, NULL, 0, MON_CREATED)) != 0)
		return r;
	if (sandbox_msg_get_i32(&m->m, &err) != 0 || sandbox_msg_get_u32(&m->m, &id) != 0)
		return AL_E_PROTO;
	if (err != 0)
		return err;
	fd = sandbox_msg_take_fd(&m->m, 0);
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (m->sbs[i].id == 0) {
			m->sbs[i].id = id;
			m->sbs[i].pidfd = fd;
			fd = -1;
			break;
		}
	if (fd >= 0)
		close(fd);
	*sandbox_id = id;
	return 0;
}

int
monitor_client_sandbox_fd(struct monitor *m, uint32_t sandbox_id)
{
	size_t i;
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (m->sbs[i].id == sandbox_id && sandbox_id != 0)
			return m->sbs[i].pidfd;
	return -1;
}

static int
proc_kill(void *ctx, uint32_t tag, pid_t pid, int sig)
{
	return monitor_client_kill(ctx, tag, pid, sig);
}

int
monitor_client_spawn(struct monitor *m, uint32_t sandbox_id, const char *const *argv,
                     const char *const *envp, const char *cwd, int stdin_fd, int stdout_fd,
                     int stderr_fd, struct sandbox_proc **out)
{
	int io[3] = {stdin_fd, stdout_fd, stderr_fd};
	return monitor_client_spawn_fds(m, sandbox_id, NULL, argv, envp, cwd, io, 3, out);
}

int
monitor_client_spawn_fds(struct monitor *m, uint32_t sandbox_id, const char *path,
                         const char *const *argv, const char *const *envp, const char *cwd,
                         const int *io, size_t nio, struct sandbox_proc **out)
{
	int fds[SANDBOX_MAX_CHILD_FDS], r, sfd;
	size_t n = 0, i;
	uint32_t mask = 0;
	int32_t err, pid;
	*out = NULL;
	/* What the monitor would take for a compromised client is refused here first. */
	if (argv == NULL || argv[0] == NULL || nio > SANDBOX_MAX_CHILD_FDS ||
	    (path != NULL && !sandbox_path_valid(path)))
		return AL_E_INVAL;
	for (i = 0; i < nio; i++)
		if (io[i] >= 0) {
			mask |= 1u << i;
			fds[n++] = io[i];
		}
	begin(m, MON_SPAWN);
	if ((r = sandbox_msg_put_u32(&m->m, sandbox_id)) != 0 ||
	    (r = sandbox_msg_put_u32(&m->m, mask)) != 0 ||
	    (r = sandbox_msg_put_str(&m->m, path != NULL ? path : "")) != 0 ||
	    (r = sandbox_msg_put_strv(&m->m, argv)) != 0 ||
	    (r = sandbox_msg_put_strv(&m->m, envp)) != 0 ||
	    (r = sandbox_msg_put_str(&m->m, cwd ? cwd : "")) != 0)
		return r;
	if ((r = call(m, fds, n, MON_SPAWNED)) != 0)
		return r;
	if (sandbox_msg_get_i32(&m->m, &err) != 0 || sandbox_msg_get_i32(&m->m, &pid) != 0)
		return AL_E_PROTO;
	if (err != 0)
		return err;
	if ((sfd = sandbox_msg_take_fd(&m->m, 0)) < 0)
		return AL_E_PROTO;
	*out = sandbox_proc_new_ext(sfd, pid, proc_kill, m, sandbox_id);
	return 0;
}

static int
simple(struct monitor *m, int r)
{
	int32_t err;
	if (r != 0)
		return r;
	if ((r = call(m, NULL, 0, MON_RESULT)) != 0)
		return r;
	return sandbox_msg_get_i32(&m->m, &err) == 0 ? err : AL_E_PROTO;
}

int
monitor_client_kill(struct monitor *m, uint32_t sandbox_id, pid_t pid, int sig)
{
	int r;
	begin(m, MON_KILL);
	if ((r = sandbox_msg_put_u32(&m->m, sandbox_id)) == 0 &&
	    (r = sandbox_msg_put_u32(&m->m, (uint32_t)pid)) == 0)
		r = sandbox_msg_put_u32(&m->m, (uint32_t)sig);
	return simple(m, r);
}

int
monitor_client_destroy(struct monitor *m, uint32_t sandbox_id)
{
	size_t i;
	begin(m, MON_DESTROY);
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (m->sbs[i].id == sandbox_id && sandbox_id != 0) {
			if (m->sbs[i].pidfd >= 0)
				close(m->sbs[i].pidfd);
			m->sbs[i].id = 0;
			m->sbs[i].pidfd = -1;
		}
	return simple(m, sandbox_msg_put_u32(&m->m, sandbox_id));
}

bool
monitor_client_gone(struct monitor *m)
{
	/* Between calls nothing arrives unasked: readable means EOF (the monitor exited). */
	struct pollfd p = {m->sock, POLLIN, 0};
	return m->dead || poll(&p, 1, 0) > 0;
}

int
monitor_client_remove(struct monitor *m, const char *session_id)
{
	begin(m, MON_REMOVE);
	return simple(m, sandbox_msg_put_str(&m->m, session_id));
}

int
monitor_client_egress(struct monitor *m, uint32_t sandbox_id, int *fd)
{
	int32_t err;
	int r;
	begin(m, MON_EGRESS);
	if ((r = sandbox_msg_put_u32(&m->m, sandbox_id)) != 0 ||
	    (r = call(m, NULL, 0, MON_RESULT)) != 0)
		return r;
	if (sandbox_msg_get_i32(&m->m, &err) != 0)
		return AL_E_PROTO;
	if (err != 0)
		return err;
	if ((*fd = sandbox_msg_take_fd(&m->m, 0)) < 0)
		return AL_E_PROTO;
	return 0;
}

int
monitor_client_send_raw(struct monitor *m, const void *p, size_t n)
{
	begin(m, 0);
	buf_reset(&m->m.b);
	if (buf_add(&m->m.b, p, n) != 0)
		return AL_E_TOOBIG;
	return sandbox_msg_send(m->sock, &m->m, NULL, 0);
}

void
monitor_free(struct monitor *m)
{
	size_t i;
	if (m == NULL)
		return;
	for (i = 0; i < MAX_SANDBOXES; i++)
		if (m->sbs[i].id != 0 && m->sbs[i].pidfd >= 0)
			close(m->sbs[i].pidfd);
	close(m->sock);
	sandbox_msg_reset(&m->m);
	buf_free(&m->m.b);
	free(m);
}
