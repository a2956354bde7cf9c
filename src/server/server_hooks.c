/* Module start/stop order; see server_hooks.h. */
#include "agent.h"
#include "events.h"
#include "server.h"
#include "server_hooks.h"
#include "tunnel.h"
#include "vaults.h"
#include "work.h"

int
server_hooks_start(struct server *s)
{
	int r;
	if ((r = vaults_init(s)) != 0 || (r = events_init(s)) != 0 || (r = work_init(s)) != 0)
		return r;
	if ((r = tunnel_start(s)) != 0)
		return r;
	/* Last: resuming sessions may emit events and enqueue work. */
	if ((r = agent_init(s)) != 0)
		return r;
	return 0;
}

void
server_hooks_stop(struct server *s)
{
	tunnel_stop(s);
	agent_shutdown(s);
	work_shutdown(s);
	events_shutdown(s);
	vaults_shutdown(s);
}
