/* The tool executor: tool_run() blocks (bash can run for minutes), so calls run on one
 * executor thread while the loop thread keeps heartbeats and the event stream alive.
 * Completion comes back through an eventfd watched by the loop; cancellation uses the
 * toolset's thread-safe tool_cancel(). Only deep-copied JSON crosses threads (jansson
 * reference counts are not atomic). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "tools/tools.h"
#include "worker.h"
#include "xalloc.h"

struct wexec {
	struct loop *loop;
	pthread_t th;
	bool th_started;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t done_cv; /* broadcast when the thread finished a call */
	bool quit;
	struct tool_ctx *ctx;
	/* the one job; fields below are handed over under mu */
	bool has_job;  /* queued for the thread */
	bool busy;     /* from wexec_run until done is delivered */
	bool finished; /* the thread produced a result */
	char *name;
	json_t *input;
	json_t *content;
	bool is_error;
	bool close_pending; /* session closed while a call ran: free ctx when it ends */
	wexec_done_fn *done;
	void *arg;
};

static json_t *
text_content(const char *text)
{
	return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

static void *
thread_main(void *arg)
{
	struct wexec *e = arg;
	/* signals belong to the loop thread's signalfd; a thread that left them unblocked
	 * would take SIGTERM's default action for the whole process */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (!e->has_job && !e->quit)
			pthread_cond_wait(&e->cv, &e->mu);
		if (e->quit)
			break;
		e->has_job = false;
		char *name = e->name;
		json_t *input = e->input;
		struct tool_ctx *ctx = e->ctx;
		pthread_mutex_unlock(&e->mu);

		json_t *content = NULL;
		bool is_error = true;
		int r = ctx ? tool_run(ctx, name, input, &content, &is_error) : AL_E_INTERNAL;
		if (r != 0 || content == NULL) {
			json_decref(content);
			content = text_content(r == AL_E_NOTFOUND ? "unknown tool"
			                                          : "tool execution failed");
			is_error = true;
		}

		pthread_mutex_lock(&e->mu);
		e->content = content;
		e->is_error = is_error;
		e->finished = true;
		pthread_cond_broadcast(&e->done_cv);
		uint64_t one = 1;
		if (write(e->efd, &one, sizeof(one)) < 0) {
			/* eventfd counter cannot overflow with one job; nothing to do */
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

static void
on_event(struct loop *l, int fd, int mask, void *arg)
{
	struct wexec *e = arg;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&e->mu);
	if (!e->finished) {
		pthread_mutex_unlock(&e->mu);
		return;
	}
	e->finished = false;
	json_t *content = e->content;
	bool is_error = e->is_error;
	e->content = NULL;
	free(e->name);
	e->name = NULL;
	json_decref(e->input);
	e->input = NULL;
	wexec_done_fn *done = e->done;
	void *darg = e->arg;
	e->busy = false;
	pthread_mutex_unlock(&e->mu);
	if (e->close_pending) {
		e->close_pending = false;
		tool_ctx_free(e->ctx);
		e->ctx = NULL;
	}
	if (done != NULL)
		done(darg, content, is_error);
	else
		json_decref(content);
}

int
wexec_new(struct loop *l, struct wexec **out)
{
	int r = AL_E_INTERNAL;
	struct wexec *e = xcalloc(1, sizeof(*e));
	e->loop = l;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	pthread_cond_init(&e->done_cv, NULL);
	e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->efd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = loop_fd_set(l, e->efd, LOOP_READ, on_event, e)) != 0)
		goto out;
	if ((r = -pthread_create(&e->th, NULL, thread_main, e)) != 0)
		goto out;
	e->th_started = true;
	*out = e;
	e = NULL;
	r = 0;
out:
	wexec_free(e);
	return r;
}

void
wexec_free(struct wexec *e)
{
	if (e == NULL)
		return;
	if (e->th_started) {
		pthread_mutex_lock(&e->mu);
		e->quit = true;
		pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&e->mu);
		if (e->ctx)
			tool_cancel(e->ctx);
		pthread_join(e->th, NULL);
	}
	if (e->efd >= 0) {
		loop_fd_del(e->loop, e->efd);
		close(e->efd);
	}
	tool_ctx_free(e->ctx);
	free(e->name);
	json_decref(e->input);
	json_decref(e->content);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->done_cv);
	free(e);
}

int
wexec_session_open(struct wexec *e, const char *workdir)
{
	if (e->ctx != NULL)
		return AL_E_CONFLICT;
	/* TODO(monitor): pass the sandbox spawner from src/worker/monitor.h here, so the
	 * persistent bash runs inside the session's sandbox. */
	return tool_ctx_new(workdir, NULL, &e->ctx);
}

void
wexec_session_close(struct wexec *e)
{
	if (e->busy) {
		e->close_pending = true; /* the thread still uses ctx */
		return;
	}
	tool_ctx_free(e->ctx);
	e->ctx = NULL;
}

bool
wexec_known(const char *name)
{
	return tool_known(name);
}

int
wexec_run(struct wexec *e, const char *name, json_t *input, wexec_done_fn *done, void *arg)
{
	if (e->busy || e->ctx == NULL)
		return AL_E_CONFLICT;
	pthread_mutex_lock(&e->mu);
	e->name = xstrdup(name);
	e->input = input ? json_deep_copy(input) : json_object();
	e->done = done;
	e->arg = arg;
	e->busy = true;
	e->has_job = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void
wexec_cancel(struct wexec *e)
{
	if (e->busy && e->ctx)
		tool_cancel(e->ctx);
}

void
wexec_abort(struct wexec *e, unsigned ms)
{
	if (e == NULL || !e->busy || e->ctx == NULL)
		return;
	tool_cancel(e->ctx);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->mu);
	while (!e->finished && (e->has_job || e->busy))
		if (pthread_cond_timedwait(&e->done_cv, &e->mu, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

void
wexec_orphan(struct wexec *e)
{
	e->done = NULL;
	e->arg = NULL;
}

bool
wexec_busy(const struct wexec *e)
{
	return e->busy;
}
