/* sd_notify(3) by hand; see notify.h. A datagram to a socket the manager owns: nothing
 * to keep open, nothing to parse back. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "notify.h"

int
notify_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r = 0;
	if (name == NULL || name[0] == '\0')
		return 0;
	size_t n = strlen(name);
	/* "/path" or "@abstract" (the '@' stands for the leading NUL); nothing else is a
	 * name systemd gives, and a name that does not fit would be cut, not sent. */
	if ((name[0] != '/' && name[0] != '@') || n < 2 || n >= sizeof(sa.sun_path))
		return AL_E_INVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	/* an abstract name is exactly n bytes; a path also takes its NUL */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		r = -errno;
	close(fd);
	return r;
}
