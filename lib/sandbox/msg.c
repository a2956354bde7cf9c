/* The message codec of the pid-1 and monitor protocols: one SOCK_SEQPACKET message per
 * request or reply, little-endian u32 fields, length-prefixed NUL-terminated strings, and
 * up to SANDBOX_MAX_CHILD_FDS fds by SCM_RIGHTS. Readers are cursors that advance only on success.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"

void
sandbox_msg_init(struct sandbox_msg *m)
{
	memset(m, 0, sizeof(*m));
	buf_init(&m->b, SANDBOX_MSG_MAX);
}

void
sandbox_msg_reset(struct sandbox_msg *m)
{
	size_t i;
	for (i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
	m->off = 0;
	buf_reset(&m->b);
}

int
sandbox_msg_put_u32(struct sandbox_msg *m, uint32_t v)
{
	unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
	return buf_add(&m->b, b, sizeof(b));
}

int
sandbox_msg_put_str(struct sandbox_msg *m, const char *s)
{
	size_t n = strlen(s);
	int r;
	if (n > SANDBOX_MSG_MAX)
		return AL_E_TOOBIG;
	if ((r = sandbox_msg_put_u32(m, (uint32_t)n)) != 0)
		return r;
	return buf_add(&m->b, s, n + 1);
}

int
sandbox_msg_put_strv(struct sandbox_msg *m, const char *const *v)
{
	size_t n = 0, i;
	int r;
	while (v != NULL && v[n] != NULL)
		n++;
	if (n >= SANDBOX_MSG_MAX_STRV)
		return AL_E_TOOBIG;
	if ((r = sandbox_msg_put_u32(m, (uint32_t)n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		if ((r = sandbox_msg_put_str(m, v[i])) != 0)
			return r;
	return 0;
}

int
sandbox_msg_get_u32(struct sandbox_msg *m, uint32_t *v)
{
	const unsigned char *p;
	if (m->b.len - m->off < 4)
		return AL_E_PROTO;
	p = (const unsigned char *)m->b.data + m->off;
	*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	m->off += 4;
	return 0;
}

int
sandbox_msg_get_i32(struct sandbox_msg *m, int32_t *v)
{
	uint32_t u;
	int r = sandbox_msg_get_u32(m, &u);
	if (r == 0)
		memcpy(v, &u, sizeof(*v));
	return r;
}

int
sandbox_msg_get_str(struct sandbox_msg *m, const char **s)
{
	uint32_t n;
	size_t save = m->off;
	const char *p;
	if (sandbox_msg_get_u32(m, &n) != 0)
		return AL_E_PROTO;
	if (m->b.len - m->off < (size_t)n + 1)
		goto bad;
	p = m->b.data + m->off;
	/* Exactly one NUL, at the end: an embedded NUL would make two readers disagree. */
	if (p[n] != '\0' || memchr(p, '\0', n) != NULL)
		goto bad;
	m->off += (size_t)n + 1;
	*s = p;
	return 0;
bad:
	m->off = save;
	return AL_E_PROTO;
}

int
sandbox_msg_get_strv(struct sandbox_msg *m, const char **v, size_t max)
{
	uint32_t n, i;
	size_t save = m->off;
	if (sandbox_msg_get_u32(m, &n) != 0)
		return AL_E_PROTO;
	if (max == 0 || n > max - 1)
		goto bad;
	for (i = 0; i < n; i++)
		if (sandbox_msg_get_str(m, &v[i]) != 0)
			goto bad;
	v[n] = NULL;
	return 0;
bad:
	m->off = save;
	return AL_E_PROTO;
}

bool
sandbox_msg_done(const struct sandbox_msg *m)
{
	return m->off == m->b.len;
}

int
sandbox_msg_send(int sock, const struct sandbox_msg *m, const int *fds, size_t nfds)
{
	struct iovec iov = {.iov_base = m->b.data ? m->b.data : (char *)"", .iov_len = m->b.len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * SANDBOX_MSG_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	if (nfds > SANDBOX_MSG_MAX_FDS)
		return AL_E_INVAL;
	if (nfds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? AL_E_CLOSED : -errno;
	if ((size_t)n != m->b.len)
		return AL_E_IO;
	return 0;
}

int
sandbox_msg_recv(int sock, struct sandbox_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (SANDBOX_MSG_MAX_FDS + 1))];
		struct cmsghdr align;
	} u;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *c;
	char *wp;
	ssize_t n;
	int r;

	sandbox_msg_reset(m);
	if ((r = buf_reserve(&m->b, SANDBOX_MSG_MAX, &wp)) != 0)
		return r;
	iov.iov_base = wp;
	iov.iov_len = SANDBOX_MSG_MAX;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? AL_E_CLOSED : -errno;
	r = 0;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		size_t k, cnt;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (m->nfds < SANDBOX_MSG_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else {
				close(fd);
				r = AL_E_PROTO;
			}
		}
	}
	if (n == 0 && m->nfds == 0)
		return AL_E_CLOSED;
	buf_commit(&m->b, (size_t)n);
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		r = AL_E_PROTO;
	if (r != 0)
		sandbox_msg_reset(m);
	return r;
}

int
sandbox_msg_take_fd(struct sandbox_msg *m, size_t i)
{
	int fd;
	if (i >= m->nfds)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}
