/* Listening sockets; see net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "net.h"

bool
net_addr_valid(const char *addr)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	uint64_t port;
	return colon != NULL && (size_t)(colon - addr) < 256 &&
	       parse_uint_cstr(colon + 1, 65535, &port) == 0;
}

int
net_listen_tcp(const char *addr, int *fd_out, int *port_out)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	uint64_t port;
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	                         .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int fd = -1, r = AL_E_INVAL;

	if (!net_addr_valid(addr) || parse_uint_cstr(colon + 1, 65535, &port) != 0)
		return AL_E_INVAL;
	const char *h = addr;
	size_t hl = (size_t)(colon - addr);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return AL_E_INVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		r = -errno;
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		r = -errno;
		goto out;
	}
	if (port_out)
		*port_out = ss.ss_family == AF_INET6
		                ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		                : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

bool
net_addr_is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
	       strncmp(addr, "localhost:", 10) == 0;
}
