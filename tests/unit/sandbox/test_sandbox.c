/* Unit tests for lib/sandbox's data side: profile checks, the setup-op plan, the
 * environment filter, and the message codec (including malformed input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "sandbox_int.h"

static void
test_profile_defaults_valid(void **state)
{
	struct sandbox_profile p;
	sandbox_profile_defaults(&p);
	assert_int_equal(sandbox_profile_check(&p, NULL), 0);
	assert_int_equal(p.nofile, 4096);
}

static void
test_profile_rejects(void **state)
{
	struct sandbox_profile p;
	struct buf err;
	buf_init(&err, 4096);
	sandbox_profile_defaults(&p);
	p.memory_mb = 3;
	p.pids_max = 2;
	p.root_dir = "relative/dir";
	p.ro_binds[0] = "/usr/../etc";
	p.n_ro_binds = 1;
	p.rw_binds[0] = "/";
	p.n_rw_binds = 1;
	p.state_dir = NULL;
	assert_int_equal(sandbox_profile_check(&p, &err), AL_E_INVAL);
	assert_non_null(strstr(err.data, "sandbox.memory_mb"));
	assert_non_null(strstr(err.data, "sandbox.pids_max"));
	assert_non_null(strstr(err.data, "sandbox.root_dir: relative/dir"));
	assert_non_null(strstr(err.data, "sandbox.ro_binds: /usr/../etc"));
	assert_non_null(strstr(err.data, "sandbox.rw_binds: /"));
	assert_non_null(strstr(err.data, "sandbox.state_dir"));
	buf_free(&err);
}

static void
test_ids_and_paths(void **state)
{
	static const struct {
		const char *s;
		int id_ok, path_ok;
	} t[] = {
	    {"sesn_011CZkZ", 1, 0}, {"a-b_c", 1, 0}, {"", 0, 0},     {"../x", 0, 0},
	    {"a/b", 0, 0},          {"/", 0, 1},     {"/a/b", 0, 1}, {"/a//b", 0, 0},
	    {"/a/./b", 0, 0},       {"/a/..", 0, 0}, {"/a/", 0, 0},  {"/a/.hidden", 0, 1},
	};
	char long_id[80];
	size_t i;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(sandbox_id_valid(t[i].s), t[i].id_ok);
		assert_int_equal(sandbox_path_valid(t[i].s), t[i].path_ok);
	}
	memset(long_id, 'a', 65);
	long_id[65] = '\0';
	assert_false(sandbox_id_valid(long_id));
	long_id[64] = '\0';
	assert_true(sandbox_id_valid(long_id));
}

static void
test_ops_plan(void **state)
{
	struct sandbox_profile p;
	struct sandbox_ops ops;
	const struct sandbox_op *o;
	size_t i;
	sandbox_profile_defaults(&p);
	p.ro_binds[0] = "/opt/tools";
	p.n_ro_binds = 1;
	p.rw_binds[0] = "/var/cache/pip";
	p.n_rw_binds = 1;
	assert_int_equal(sandbox_ops_build(&p, "/srv/ws/s1", &ops), 0);

	o = sandbox_ops_find(&ops, "/workspace");
	assert_non_null(o);
	assert_int_equal(o->type, SB_OP_BIND);
	assert_true(o->flags & SB_OPF_RW);
	assert_string_equal(o->src, "/srv/ws/s1");
	o = sandbox_ops_find(&ops, "/srv/ws/s1"); /* also at its host path */
	assert_non_null(o);
	assert_true(o->flags & SB_OPF_RW);
	o = sandbox_ops_find(&ops, "/usr");
	assert_non_null(o);
	assert_int_equal(o->type, SB_OP_SYSDIR);
	assert_false(o->flags & SB_OPF_RW);
	o = sandbox_ops_find(&ops, "/opt/tools");
	assert_non_null(o);
	assert_false(o->flags & SB_OPF_RW);
	o = sandbox_ops_find(&ops, "/var/cache/pip");
	assert_non_null(o);
	assert_true(o->flags & SB_OPF_RW);
	o = sandbox_ops_find(&ops, "/tmp");
	assert_non_null(o);
	assert_int_equal(o->type, SB_OP_TMPFS);
	assert_int_equal(o->size, 512ull << 20);
	assert_non_null(sandbox_ops_find(&ops, "/proc"));
	assert_non_null(sandbox_ops_find(&ops, "/dev"));
	o = sandbox_ops_find(&ops, "/etc/passwd");
	assert_non_null(o);
	assert_non_null(strstr(o->data, "sandbox:x:1000:1000:sandbox:/workspace:/bin/bash"));
	/* never the host's secrets: no bind of /etc itself, shadow, or the state dir */
	assert_null(sandbox_ops_find(&ops, "/etc/shadow"));
	for (i = 0; i < ops.n; i++) {
		if (ops.v[i].src == NULL)
			continue;
		assert_string_not_equal(ops.v[i].src, "/etc");
		assert_null(strstr(ops.v[i].src, "/var/lib/airlock"));
	}
	/* /dev before /dev/shm, /tmp before binds below it: mount order matters */
	{
		ptrdiff_t dev = sandbox_ops_find(&ops, "/dev") - ops.v;
		ptrdiff_t shm = sandbox_ops_find(&ops, "/dev/shm") - ops.v;
		assert_true(dev < shm);
	}
	sandbox_ops_free(&ops);

	p.root_dir = "/srv/images/debian";
	assert_int_equal(sandbox_ops_build(&p, "/workspace", &ops), 0);
	o = sandbox_ops_find(&ops, "/usr");
	assert_string_equal(o->src, "/srv/images/debian/usr");
	o = sandbox_ops_find(&ops, "/etc/ssl");
	assert_string_equal(o->src, "/srv/images/debian/etc/ssl");
	/* workspace at /workspace: bound once */
	{
		size_t n = 0;
		for (i = 0; i < ops.n; i++)
			n += strcmp(ops.v[i].dst, "/workspace") == 0;
		assert_int_equal(n, 1);
	}
	sandbox_ops_free(&ops);

	assert_int_equal(sandbox_ops_build(&p, "relative", &ops), AL_E_INVAL);
	assert_int_equal(ops.n, 0);
	assert_int_equal(sandbox_ops_build(&p, "/", &ops), AL_E_INVAL);
}

static void
test_env(void **state)
{
	const char *in[] = {"ANTHROPIC_API_KEY=sk-ant-x",
	                    "ANTHROPIC_BASE_URL=http://x",
	                    "FOO=bar",
	                    "PATH=/opt/bin",
	                    "=bad",
	                    "no-equals",
	                    "1BAD=x",
	                    "A-B=c",
	                    NULL};
	char **e = sandbox_env_build(in);
	size_t i;
	int foo = 0, path = 0, home = 0;
	for (i = 0; e[i]; i++) {
		assert_null(strstr(e[i], "ANTHROPIC_"));
		assert_null(strstr(e[i], "bad"));
		assert_null(strstr(e[i], "A-B"));
		foo += strcmp(e[i], "FOO=bar") == 0;
		path += strcmp(e[i], "PATH=/opt/bin") == 0;
		home += strcmp(e[i], "HOME=/workspace") == 0;
		assert_true(strncmp(e[i], "PATH=", 5) != 0 || strcmp(e[i], "PATH=/opt/bin") == 0);
	}
	assert_int_equal(foo, 1);
	assert_int_equal(path, 1);
	assert_int_equal(home, 1);
	sandbox_strv_free(e);
	e = sandbox_env_build(NULL);
	assert_string_equal(e[0],
	                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	sandbox_strv_free(e);
}

static void
test_msg_roundtrip(void **state)
{
	struct sandbox_msg m, r;
	int sv[2], pfd[2];
	const char *argv[] = {"echo", "hi there", NULL}, *got[8], *s;
	uint32_t u;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(pipe(pfd), 0);
	sandbox_msg_init(&m);
	sandbox_msg_init(&r);
	assert_int_equal(sandbox_msg_put_u32(&m, 0xdeadbeef), 0);
	assert_int_equal(sandbox_msg_put_strv(&m, argv), 0);
	assert_int_equal(sandbox_msg_put_str(&m, "/workspace"), 0);
	assert_int_equal(sandbox_msg_send(sv[0], &m, pfd, 1), 0);
	assert_int_equal(sandbox_msg_recv(sv[1], &r), 0);
	assert_int_equal(r.nfds, 1);
	assert_int_equal(sandbox_msg_get_u32(&r, &u), 0);
	assert_int_equal(u, 0xdeadbeef);
	assert_int_equal(sandbox_msg_get_strv(&r, got, 8), 0);
	assert_string_equal(got[1], "hi there");
	assert_null(got[2]);
	assert_int_equal(sandbox_msg_get_str(&r, &s), 0);
	assert_string_equal(s, "/workspace");
	assert_true(sandbox_msg_done(&r));
	assert_int_equal(sandbox_msg_get_u32(&r, &u), AL_E_PROTO);
	sandbox_msg_reset(&r);
	close(sv[0]);
	assert_int_equal(sandbox_msg_recv(sv[1], &r), AL_E_CLOSED);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	buf_free(&r.b);
}

/* Up to SANDBOX_MAX_CHILD_FDS fds travel with one message (bash needs 4); a sender that
 * asks for more is refused, and a peer that sends more gets AL_E_PROTO with every
 * received fd closed. */
static void
test_msg_fd_limit(void **state)
{
	struct sandbox_msg m, r;
	int sv[2], fds[SANDBOX_MAX_CHILD_FDS + 1], i, before;
	union {
		char buf[CMSG_SPACE(sizeof(int) * (SANDBOX_MAX_CHILD_FDS + 1))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	for (i = 0; i <= SANDBOX_MAX_CHILD_FDS; i++)
		assert_true((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	sandbox_msg_init(&m);
	sandbox_msg_init(&r);
	assert_int_equal(sandbox_msg_put_u32(&m, 7), 0);
	assert_int_equal(sandbox_msg_send(sv[0], &m, fds, SANDBOX_MAX_CHILD_FDS + 1), AL_E_INVAL);
	assert_int_equal(sandbox_msg_send(sv[0], &m, fds, SANDBOX_MAX_CHILD_FDS), 0);
	assert_int_equal(sandbox_msg_recv(sv[1], &r), 0);
	assert_int_equal(r.nfds, SANDBOX_MAX_CHILD_FDS);
	for (i = 0; i < SANDBOX_MAX_CHILD_FDS; i++)
		assert_true(fcntl(r.fds[i], F_GETFD) & FD_CLOEXEC);
	sandbox_msg_reset(&r);

	/* A raw sendmsg with one fd too many. */
	before = open("/dev/null", O_RDONLY);
	close(before);
	memset(&u, 0, sizeof(u));
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (SANDBOX_MAX_CHILD_FDS + 1));
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (SANDBOX_MAX_CHILD_FDS + 1));
	assert_int_equal(sendmsg(sv[0], &mh, 0), 1);
	assert_int_equal(sandbox_msg_recv(sv[1], &r), AL_E_PROTO);
	assert_int_equal(r.nfds, 0);
	/* nothing leaked: the lowest free fd is the same as before the message */
	i = open("/dev/null", O_RDONLY);
	assert_int_equal(i, before);
	close(i);

	for (i = 0; i <= SANDBOX_MAX_CHILD_FDS; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
	buf_free(&m.b);
	buf_free(&r.b);
}

/* Hostile bytes: every reader must fail cleanly and leave the cursor where it was. */
static void
test_msg_malformed(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} t[] = {
	    {"\x05\x00\x00\x00"
	     "abc",
	     7}, /* length past the end */
	    {"\x03\x00\x00\x00"
	     "abcd",
	     8}, /* no NUL where it must be */
	    {"\x03\x00\x00\x00"
	     "a\0c\0",
	     8}, /* embedded NUL */
	    {"\xff\xff\xff\xff"
	     "a",
	     5},             /* huge length */
	    {"\x01\x00", 2}, /* short length field */
	};
	struct sandbox_msg m;
	const char *s, *v[4];
	size_t i;
	sandbox_msg_init(&m);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&m.b);
		m.off = 0;
		assert_int_equal(buf_add(&m.b, t[i].bytes, t[i].len), 0);
		assert_int_equal(sandbox_msg_get_str(&m, &s), AL_E_PROTO);
		assert_int_equal(m.off, 0);
	}
	/* a strv claiming more entries than the reader allows */
	buf_reset(&m.b);
	m.off = 0;
	assert_int_equal(buf_add(&m.b, "\x09\x00\x00\x00", 4), 0);
	assert_int_equal(sandbox_msg_get_strv(&m, v, 4), AL_E_PROTO);
	assert_int_equal(m.off, 0);
	buf_free(&m.b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_profile_defaults_valid),
	    cmocka_unit_test(test_profile_rejects),
	    cmocka_unit_test(test_ids_and_paths),
	    cmocka_unit_test(test_ops_plan),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_msg_roundtrip),
	    cmocka_unit_test(test_msg_malformed),
	    cmocka_unit_test(test_msg_fd_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
