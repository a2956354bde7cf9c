/* The first SIGTERM/SIGINT drains instead of exiting: nothing new comes in, what is in
 * flight finishes, then the loop stops; see docs/server/drain.md. Every answer the
 * server gave was committed first, so a drain cut short (the timeout, a second signal)
 * loses nothing acknowledged: only calls in flight, which the next server redoes. */
#include <stdio.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "tunnel.h"
#include "util.h"
#include "work.h"

/* How often the drain looks whether it is done: short against the timeout, long
 * against a loop turn. */
#define DRAIN_CHECK_MS 50

static void
drain_check(struct loop *l, void *arg)
{
	struct server *s = arg;
	size_t conns =
	    (s->http ? http_server_conn_count(s->http) : 0) + tunnel_ingress_conn_count(s);
	size_t calls = agent_calls_in_flight(s);
	uint64_t now = now_mono_ms();
	char ms[24], nconns[24], ncalls[24];
	s->drain_timer = NULL;
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(now - s->drain_started_ms));
	snprintf(nconns, sizeof(nconns), "%zu", conns);
	snprintf(ncalls, sizeof(ncalls), "%zu", calls);
	if (conns == 0 && calls == 0) {
		log_info("drained: exiting", "ms", ms);
		loop_stop(l);
		return;
	}
	if (now >= s->drain_started_ms + (uint64_t)s->cfg.drain_timeout_s * 1000) {
		log_warn("drain timed out: exiting with work in flight (the next server redoes "
		         "it from the log)",
		         "ms", ms, "connections", nconns, "agent_calls", ncalls);
		loop_stop(l);
		return;
	}
	s->drain_timer = loop_timer_add(l, DRAIN_CHECK_MS, drain_check, s);
}

void
server_drain(struct server *s, const char *signame)
{
	char timeout[24];
	if (s->draining)
		return;
	s->draining = true; /* /readyz answers 503 from now on */
	s->drain_started_ms = now_mono_ms();
	snprintf(timeout, sizeof(timeout), "%u", s->cfg.drain_timeout_s);
	log_info("shutting down: draining", "signal", signame, "drain_timeout_s", timeout);
	notify_send("STOPPING=1\nSTATUS=draining"); /* a failure was logged at READY=1 */
	/* New connections are refused (the listener closes) and idle keep-alive ones
	 * closed; a request already arriving or being answered finishes, then its
	 * connection closes. */
	if (s->http)
		http_server_shutdown(s->http);
	tunnel_ingress_drain(s);
	tunnel_edge_drain(s);
	/* Streams would hold the drain to its timeout: they end cleanly now, and clients
	 * resume elsewhere with Last-Event-ID. Held polls get "no work" and poll again. */
	events_close_all_streams(s);
	work_release_pollers(s);
	agent_drain(s);
	drain_check(s->loop, s);
}

void
server_drain_cancel(struct server *s)
{
	if (s->loop != NULL)
		loop_timer_cancel(s->loop, s->drain_timer);
	s->drain_timer = NULL;
}
