/* Placeholder until the agent loop lands (being written now): sessions accept
 * events but no model is called. Replaced wholesale by the agent loop. */
#include "agent.h"
#include "log.h"
#include "server.h"

void
agent_session_wake(struct server *s, const char *session_id)
{
	(void)s;
	log_warn("agent loop not built yet; session events are stored only", "session_id",
		 session_id);
}

void
agent_session_drop(struct server *s, const char *session_id)
{
	(void)s;
	(void)session_id;
}

int
agent_init(struct server *s)
{
	(void)s;
	return 0;
}

void
agent_shutdown(struct server *s)
{
	(void)s;
}
