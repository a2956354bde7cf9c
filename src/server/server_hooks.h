/* Start/stop of the server's stateful modules (SSE hub, work queue timers, agent
 * loops), called once the database and listener are up. Each module adds itself
 * in server_hooks.c. */
#ifndef AL_SERVER_HOOKS_H
#define AL_SERVER_HOOKS_H

struct server;
int server_hooks_start(struct server *s);
void server_hooks_stop(struct server *s);

#endif
