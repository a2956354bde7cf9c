/* Module start/stop order; see server_hooks.h. */
#include "server.h"
#include "server_hooks.h"

int
server_hooks_start(struct server *s)
{
	(void)s;
	return 0;
}

void
server_hooks_stop(struct server *s)
{
	(void)s;
}
