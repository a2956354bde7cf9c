/* The bash tool: one persistent /bin/bash per session. Each command is framed so that its
 * exit status comes back on a private status pipe (fd 3, closed for the command itself)
 * tagged with a fresh random token, so no output can end a call early or forge a status. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

#define CHUNK 65536
#define STATUS_LINE_MAX 256
#define BASH_STALE_MAX 8  /* earlier calls' output pipes still held by background jobs */
#define BASH_CALL_FD "93" /* the shell's fd for the call's pipe (closed for the command) */
#define HELPER_WAIT_MS 5000

/* Background jobs keep the stdout of the call that started them. If every call shared the
 * shell's stdout, a job's later output would land in whatever call runs then (issue 11).
 * So each call gets its own pipe: a helper process started for the call holds the write
 * end as its fd 4, and the shell opens /proc/<helper>/fd/4 for the command. Once the call
 * ended, what its jobs write goes to that call's pipe, which is drained and dropped (kept
 * open, so a job's write never fails), never to a later call. */
struct tool_bash {
	void *proc;
	int in_fd;  /* commands (a socket, so a dead shell gives EPIPE without SIGPIPE) */
	int out_fd; /* the shell's stdout and stderr: only the shell's own messages */
	int st_fd;  /* status lines "TOKEN CODE\n" */
	int stale[BASH_STALE_MAX]; /* read ends of ended calls' pipes, drained and dropped */
	size_t nstale;
};

/* The call's pipe and the helper process that lends it to the shell. */
struct bash_call {
	void *helper;
	int rd;       /* read end: the command's output */
	int hold;     /* helper's stdin: it lives until this is closed */
	char pid[24]; /* the helper's pid as the shell sees it, "" when there is none */
};

static int read_avail(int fd, struct buf *out, uint64_t *total);

static void
bash_free(struct tool_ctx *ctx, struct tool_bash *b)
{
	if (b == NULL)
		return;
	if (b->proc != NULL) {
		ctx->sp.kill(ctx->sp.arg, b->proc);
		ctx->sp.reap(ctx->sp.arg, b->proc, NULL);
	}
	if (b->in_fd >= 0)
		close(b->in_fd);
	if (b->out_fd >= 0)
		close(b->out_fd);
	if (b->st_fd >= 0)
		close(b->st_fd);
	for (size_t i = 0; i < b->nstale; i++)
		close(b->stale[i]);
	free(b);
}

static void
call_end(struct tool_ctx *ctx, struct bash_call *c)
{
	if (c->helper != NULL) {
		ctx->sp.kill(ctx->sp.arg, c->helper);
		ctx->sp.reap(ctx->sp.arg, c->helper, NULL);
		c->helper = NULL;
	}
	if (c->hold >= 0)
		close(c->hold);
	if (c->rd >= 0)
		close(c->rd);
	c->hold = c->rd = -1;
}

/* Starts the call's helper: bash printing its own pid (as the sandbox's shell will see it)
 * and waiting on stdin, with the call pipe's write end as fd 4. On any failure c->pid
 * stays "" and the call uses the shell's stdout as before. */
static void
call_start(struct tool_ctx *ctx, struct bash_call *c)
{
	static const char *const argv[] = {
	    "bash",
	    "--noprofile",
	    "--norc",
	    "-c",
	    "builtin printf '%s\\n' \"$$\" >&3; exec 3>&-; read -r _",
	    NULL};
	int p[2] = {-1, -1}, h[2] = {-1, -1}, a[2] = {-1, -1};
	char **env = tool_env_build(NULL);
	memset(c, 0, sizeof(*c));
	c->rd = c->hold = -1;
	if (pipe2(p, O_CLOEXEC) != 0 || pipe2(h, O_CLOEXEC) != 0 || pipe2(a, O_CLOEXEC) != 0)
		goto out;
	/* A pipe's inode is its creator's, mode 0600: the shell of a sandbox runs as another
	 * uid and could not open it through /proc. Others may write; nobody else can reach
	 * it (the helper's fds are only open to its own uid). */
	(void)fchmod(p[1], 0602);
	/* The pipe is the helper's fd 4, which it never touches: bash redirects a builtin's
	 * output by moving fd 1 for a moment, and the shell must not open that moment's
	 * fd 1. */
	int fds[5] = {h[0], -1, -1, a[1], p[1]};
	struct tool_spawn_req req = {.path = "/bin/bash",
	                             .argv = argv,
	                             .envp = (const char *const *)env,
	                             .cwd = NULL,
	                             .fds = fds,
	                             .nfds = 5};
	if (ctx->sp.spawn(ctx->sp.arg, &req, &c->helper) != 0) {
		c->helper = NULL;
		goto out;
	}
	close(a[1]);
	a[1] = -1;
	char line[24];
	size_t n = 0;
	uint64_t deadline = now_mono_ms() + HELPER_WAIT_MS;
	while (n < sizeof(line) - 1) {
		struct pollfd pf = {.fd = a[0], .events = POLLIN};
		int left = tool_ms_left(deadline);
		if (left == 0 || (poll(&pf, 1, left) < 0 && errno != EINTR))
			break;
		ssize_t k = read(a[0], line + n, sizeof(line) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (memchr(line, '\n', n) != NULL)
			break;
	}
	line[n] = '\0';
	uint64_t pid;
	char *nl = strchr(line, '\n');
	if (nl == NULL || parse_uint(line, (size_t)(nl - line), 1u << 30, &pid) != 0 || pid == 0)
		goto out;
	(void)snprintf(c->pid, sizeof(c->pid), "%llu", (unsigned long long)pid);
	c->rd = p[0];
	c->hold = h[1];
	p[0] = h[1] = -1;
	(void)fcntl(c->rd, F_SETFL, O_NONBLOCK);
out:
	if (c->pid[0] == '\0')
		call_end(ctx, c);
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 0)
			close(p[i]);
		if (h[i] >= 0)
			close(h[i]);
		if (a[i] >= 0)
			close(a[i]);
	}
	tool_env_free(env);
}

/* After the call: its pipe is closed once no background job holds it any more, else kept
 * and drained (dropping the output) so a job's writes never fail or block for long. */
static void
call_retire(struct tool_ctx *ctx, struct tool_bash *b, struct bash_call *c)
{
	int rd = c->rd;
	c->rd = -1;
	call_end(ctx, c);
	if (rd < 0)
		return;
	char chunk[CHUNK];
	ssize_t k;
	while ((k = read(rd, chunk, sizeof(chunk))) > 0 || (k < 0 && errno == EINTR))
		;
	if (k == 0) { /* EOF: no writer left */
		close(rd);
		return;
	}
	if (b->nstale == BASH_STALE_MAX) {
		/* the oldest job's next write gets EPIPE: a bound on fds kept for jobs */
		close(b->stale[0]);
		memmove(b->stale, b->stale + 1, (BASH_STALE_MAX - 1) * sizeof(int));
		b->nstale--;
	}
	b->stale[b->nstale++] = rd;
}

static void
drain_stale(struct tool_bash *b)
{
	for (size_t i = 0; i < b->nstale;) {
		if (read_avail(b->stale[i], NULL, NULL) == 1) {
			close(b->stale[i]);
			memmove(b->stale + i, b->stale + i + 1, (b->nstale - i - 1) * sizeof(int));
			b->nstale--;
			continue;
		}
		i++;
	}
}

void
tool_bash_close(struct tool_ctx *ctx)
{
	bash_free(ctx, ctx->bash);
	ctx->bash = NULL;
}

static int
bash_start(struct tool_ctx *ctx, struct tool_bash **out)
{
	int r = AL_E_INTERNAL;
	int in[2] = {-1, -1}, o[2] = {-1, -1}, st[2] = {-1, -1};
	struct tool_bash *b = xcalloc(1, sizeof(*b));
	static const char *const extra[] = {"PS1=", "PS2=", "TERM=dumb", NULL};
	static const char *const argv[] = {"bash", "--noprofile", "--norc", NULL};
	char **env = NULL;

	b->in_fd = b->out_fd = b->st_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
	    pipe2(o, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
		r = -errno;
		goto out;
	}
	env = tool_env_build(extra);
	int fds[4] = {in[1], o[1], o[1], st[1]};
	struct tool_spawn_req req = {
	    .path = "/bin/bash",
	    .argv = argv,
	    .envp = (const char *const *)env,
	    .cwd = ctx->workdir,
	    .fds = fds,
	    .nfds = 4,
	};
	if ((r = ctx->sp.spawn(ctx->sp.arg, &req, &b->proc)) != 0)
		goto out;
	b->in_fd = in[0];
	b->out_fd = o[0];
	b->st_fd = st[0];
	in[0] = o[0] = st[0] = -1;
	(void)fcntl(b->in_fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(b->out_fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(b->st_fd, F_SETFL, O_NONBLOCK);
	*out = b;
	b = NULL;
	r = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (o[i] >= 0)
			close(o[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	tool_env_free(env);
	bash_free(ctx, b);
	return r;
}

/* Keeps the last TOOL_BASH_OUTPUT_LIMIT bytes and counts them all. */
static void
tail_add(struct buf *out, const char *p, size_t n, uint64_t *total)
{
	*total += n;
	if (n >= TOOL_BASH_OUTPUT_LIMIT) {
		p += n - TOOL_BASH_OUTPUT_LIMIT;
		n = TOOL_BASH_OUTPUT_LIMIT;
		buf_reset(out);
	}
	if (out->len + n > TOOL_BASH_OUTPUT_LIMIT)
		buf_consume(out, out->len + n - TOOL_BASH_OUTPUT_LIMIT);
	(void)buf_add(out, p, n);
}

/* Reads what is available; returns 1 on EOF, 0 otherwise. */
static int
read_avail(int fd, struct buf *out, uint64_t *total)
{
	char chunk[CHUNK];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n > 0) {
			if (out != NULL)
				tail_add(out, chunk, (size_t)n, total);
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : 1;
	}
}

/* The SDK's ANSI_RE /\x1b\[[0-9;?]*[ -/]*[@-~]/g: CSI sequences only. */
static void
strip_ansi(struct buf *b)
{
	size_t o = 0, i = 0, n = b->len;
	char *s = b->data;
	while (i < n) {
		if (s[i] == 0x1b && i + 1 < n && s[i + 1] == '[') {
			size_t j = i + 2;
			while (j < n &&
			       ((s[j] >= '0' && s[j] <= '9') || s[j] == ';' || s[j] == '?'))
				j++;
			while (j < n && s[j] >= ' ' && s[j] <= '/')
				j++;
			if (j < n && s[j] >= '@' && s[j] <= '~') {
				i = j + 1;
				continue;
			}
		}
		s[o++] = s[i++];
	}
	b->len = o;
	if (s != NULL)
		s[o] = '\0';
}

enum bash_end { END_STATUS, END_TIMEOUT, END_CANCEL, END_DEAD };

/* Writes the framed command and collects output until the status line for token arrives. */
static enum bash_end
bash_exec(struct tool_ctx *ctx, struct tool_bash *b, int call_rd, const char *script,
          size_t script_len, const char *token, uint64_t timeout_ms, struct buf *out,
          uint64_t *total, int *code)
{
	char line[STATUS_LINE_MAX];
	size_t line_len = 0, written = 0, toklen = strlen(token);
	uint64_t deadline = now_mono_ms() + timeout_ms;
	bool out_eof = false, call_eof = call_rd < 0;

	for (;;) {
		struct pollfd pf[5 + BASH_STALE_MAX] = {
		    {.fd = b->st_fd, .events = POLLIN},
		    {.fd = out_eof ? -1 : b->out_fd, .events = POLLIN},
		    {.fd = ctx->cancel_fd, .events = POLLIN},
		    {.fd = written < script_len ? b->in_fd : -1, .events = POLLOUT},
		    {.fd = call_eof ? -1 : call_rd, .events = POLLIN},
		};
		size_t np = 5;
		for (size_t i = 0; i < b->nstale; i++)
			pf[np++] = (struct pollfd){.fd = b->stale[i], .events = POLLIN};
		if (ctx->cancelled)
			return END_CANCEL;
		int left = tool_ms_left(deadline);
		if (left == 0)
			return END_TIMEOUT;
		int n = poll(pf, (nfds_t)np, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return END_DEAD;
		if (pf[2].revents != 0)
			return END_CANCEL;
		if (pf[3].revents != 0) {
			ssize_t w = send(b->in_fd, script + written, script_len - written,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return END_DEAD;
			if (w > 0)
				written += (size_t)w;
		}
		if (pf[1].revents != 0 && read_avail(b->out_fd, out, total) == 1)
			out_eof = true;
		if (pf[4].revents != 0 && read_avail(call_rd, out, total) == 1)
			call_eof = true;
		if (np > 5)
			drain_stale(b);
		if (pf[0].revents == 0)
			continue;
		for (;;) {
			char c;
			ssize_t r = read(b->st_fd, &c, 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN)
				break;
			if (r <= 0)
				return END_DEAD; /* the shell is gone */
			if (c != '\n') {
				if (line_len < sizeof(line) - 1)
					line[line_len++] = c;
				continue;
			}
			line[line_len] = '\0';
			line_len = 0;
			/* Only a line carrying this call's token counts. */
			if (strncmp(line, token, toklen) != 0 || line[toklen] != ' ')
				continue;
			const char *num = line + toklen + 1;
			uint64_t v;
			*code = parse_uint_cstr(num, 255, &v) == 0 ? (int)v : -1;
			/* Everything the command wrote is in the pipes by now. */
			if (!out_eof)
				(void)read_avail(b->out_fd, out, total);
			if (!call_eof)
				(void)read_avail(call_rd, out, total);
			return END_STATUS;
		}
	}
}

void
tool_bash_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *command = tool_in_str(in, "command");
	bool restart = tool_in_bool(in, "restart");
	int64_t timeout_ms = tool_in_int(in, "timeout_ms", 0);
	struct buf out, script;
	struct bash_call call = {.rd = -1, .hold = -1};
	uint64_t total = 0;
	int code = -1, r;
	char token[64];
	unsigned char rnd[16];

	buf_init(&out, TOOL_BASH_OUTPUT_LIMIT);
	buf_init(&script, 16u << 20);
	if (restart)
		tool_bash_close(ctx);
	if (command == NULL || command[0] == '\0') {
		if (restart)
			(void)buf_add_str(&res->text, "bash session restarted");
		else
			tool_fail(res, "bash: command is required");
		goto out;
	}
	if (timeout_ms <= 0)
		timeout_ms = TOOL_BASH_DEFAULT_TIMEOUT_MS;
	if (ctx->bash == NULL && (r = bash_start(ctx, &ctx->bash)) != 0) {
		tool_fail(res, "bash: failed to start /bin/bash: %s", al_strerror(r));
		goto out;
	}
	/* Output left over from background jobs between calls is not this call's. */
	(void)read_avail(ctx->bash->out_fd, NULL, NULL);
	(void)read_avail(ctx->bash->st_fd, NULL, NULL);
	drain_stale(ctx->bash);
	call_start(ctx, &call);

	random_bytes(rnd, sizeof(rnd));
	size_t o = (size_t)snprintf(token, sizeof(token), "__AL_CMD_");
	for (size_t i = 0; i < sizeof(rnd); i++)
		o += (size_t)snprintf(token + o, sizeof(token) - o, "%02x", rnd[i]);
	(void)snprintf(token + o, sizeof(token) - o, "_DONE__");
	/* The token is split by quoting so that echoing the script (set -v) cannot show it
	 * whole; fd 3 is closed for the command so only the shell writes status lines. */
	/* The command's stdout is the call's own pipe (fd 93, from the helper), or the
	 * shell's when the helper or /proc is not there. Nothing follows the status line:
	 * the next call's exec replaces fd 93, dropping the shell's hold on this pipe. */
	bool own = call.pid[0] != '\0';
	if (buf_addf(&script,
	             own ? "{ exec " BASH_CALL_FD
	                   ">/proc/%s/fd/4; } 2>/dev/null || exec " BASH_CALL_FD ">&1; "
	                 : "exec " BASH_CALL_FD ">&1%s; ",
	             own ? call.pid : "") != 0 ||
	    buf_add_str(&script, "{ ") != 0 ||
	    buf_add(&script, command, json_string_length(json_object_get(in, "command"))) != 0 ||
	    buf_addf(&script,
	             "\n} </dev/null >&" BASH_CALL_FD " 2>&1 3>&- " BASH_CALL_FD
	             ">&-; builtin printf '%%s %%d\\n' '%.8s''%s' \"$?\" >&3\n",
	             token, token + 8) != 0) {
		tool_fail(res, "bash: command too long");
		goto out;
	}
	enum bash_end end = bash_exec(ctx, ctx->bash, call.rd, script.data, script.len, token,
	                              (uint64_t)timeout_ms, &out, &total, &code);
	if (end == END_STATUS)
		call_retire(ctx, ctx->bash, &call);
	else
		call_end(ctx, &call);
	if (end != END_STATUS) {
		/* The command may still run and later print a status: never reuse this shell. */
		tool_bash_close(ctx);
		if (end == END_TIMEOUT)
			tool_fail(res, "bash: bash command timed out after %lldms",
			          (long long)timeout_ms);
		else if (end == END_CANCEL)
			tool_fail(res, "bash: This operation was aborted");
		else
			tool_fail(res, "bash: bash session terminated");
		goto out;
	}
	/* The SDK caps the stream it reads, which still holds its status line ("\n", a
	 * 53-byte sentinel, the code, "\n") when the cap is applied: keep exactly the output
	 * tail it keeps, so truncated results match byte for byte. */
	char codestr[16];
	size_t suffix = 2 + 53 + (size_t)snprintf(codestr, sizeof(codestr), "%d", code);
	bool truncated = total + suffix > TOOL_BASH_OUTPUT_LIMIT;
	if (truncated && out.len > TOOL_BASH_OUTPUT_LIMIT - suffix)
		buf_consume(&out, out.len - (TOOL_BASH_OUTPUT_LIMIT - suffix));
	strip_ansi(&out);
	while (out.len > 0 && out.data[out.len - 1] == '\n')
		out.data[--out.len] = '\0';
	size_t skip = 0;
	if (truncated) {
		/* Start the kept tail on a character boundary. */
		while (skip < 3 && skip < out.len && ((unsigned char)out.data[skip] & 0xc0) == 0x80)
			skip++;
		(void)buf_add_str(&res->text, "[output truncated]\n");
	}
	if (out.len > skip)
		(void)buf_add(&res->text, out.data + skip, out.len - skip);
	if (code != 0) {
		res->is_error = true;
		if (res->text.len == 0)
			(void)buf_addf(&res->text, "exit %d", code);
	}
out:
	call_end(ctx, &call);
	buf_free(&out);
	buf_free(&script);
}
