/* epoll loop; see loop.h. fd handlers live in a table indexed by fd (fds are small
 * and dense), timers in a binary min-heap keyed by monotonic deadline. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "loop.h"
#include "util.h"
#include "xalloc.h"

struct fd_slot {
	loop_fd_cb *cb;
	void *arg;
	int mask;
	bool registered;
};

struct loop_timer {
	uint64_t deadline;
	uint64_t seq; /* ties broken by insertion order, so equal deadlines run FIFO */
	size_t heap_idx;
	loop_timer_cb *cb;
	void *arg;
};

struct sig_slot {
	loop_signal_cb *cb;
	void *arg;
};

struct child {
	pid_t pid;
	int pidfd;
	loop_child_cb *cb;
	void *arg;
};

struct loop {
	int epfd;
	bool stop;
	struct fd_slot *fds;
	size_t nfds;
	struct loop_timer **heap;
	size_t nheap, capheap;
	uint64_t timer_seq;
	int sigfd;
	sigset_t sigmask;
	struct sig_slot sigs[65];
};

struct loop *
loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	l->sigfd = -1;
	sigemptyset(&l->sigmask);
	return l;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->fds);
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l);
}

static int
ev_mask(int mask)
{
	int ev = 0;
	if (mask & LOOP_READ)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (mask & LOOP_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

int
loop_fd_set(struct loop *l, int fd, int mask, loop_fd_cb *cb, void *arg)
{
	if (fd < 0)
		return AL_E_INVAL;
	if ((size_t)fd >= l->nfds) {
		size_t n = l->nfds ? l->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		l->fds = xreallocarray(l->fds, n, sizeof(*l->fds));
		memset(l->fds + l->nfds, 0, (n - l->nfds) * sizeof(*l->fds));
		l->nfds = n;
	}
	struct fd_slot *s = &l->fds[fd];
	if (s->registered && s->mask == mask) { /* no epoll_ctl per call: hot on every flush */
		s->cb = cb;
		s->arg = arg;
		return 0;
	}
	struct epoll_event ev = {.events = (uint32_t)ev_mask(mask), .data.fd = fd};
	int op = s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0)
		return -errno;
	s->registered = true;
	s->cb = cb;
	s->arg = arg;
	s->mask = mask;
	return 0;
}

void
loop_fd_del(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].registered)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&l->fds[fd], 0, sizeof(l->fds[fd]));
}

static bool
timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void
heap_swap(struct loop *l, size_t i, size_t j)
{
	struct loop_timer *t = l->heap[i];
	l->heap[i] = l->heap[j];
	l->heap[j] = t;
	l->heap[i]->heap_idx = i;
	l->heap[j]->heap_idx = j;
}

static void
heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!timer_less(l->heap[i], l->heap[p]))
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void
heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->nheap && timer_less(l->heap[c], l->heap[m]))
			m = c;
		if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[m]))
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

static void
heap_remove(struct loop *l, size_t i)
{
	l->nheap--;
	if (i != l->nheap) {
		l->heap[i] = l->heap[l->nheap];
		l->heap[i]->heap_idx = i;
		heap_down(l, i);
		heap_up(l, i);
	}
}

struct loop_timer *
loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb *cb, void *arg)
{
	struct loop_timer *t = xcalloc(1, sizeof(*t));
	t->deadline = now_mono_ms() + delay_ms;
	t->seq = l->timer_seq++;
	t->cb = cb;
	t->arg = arg;
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? l->capheap * 2 : 16;
		l->heap = xreallocarray(l->heap, l->capheap, sizeof(*l->heap));
	}
	t->heap_idx = l->nheap;
	l->heap[l->nheap++] = t;
	heap_up(l, t->heap_idx);
	return t;
}

void
loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (t == NULL)
		return;
	heap_remove(l, t->heap_idx);
	free(t);
}

static void
signal_ready(struct loop *l, int fd, int mask, void *arg)
{
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int signo = (int)si.ssi_signo;
		if (signo > 0 && signo < 65 && l->sigs[signo].cb)
			l->sigs[signo].cb(l, signo, l->sigs[signo].arg);
	}
}

int
loop_signal_add(struct loop *l, int signo, loop_signal_cb *cb, void *arg)
{
	if (signo <= 0 || signo >= 65)
		return AL_E_INVAL;
	sigaddset(&l->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
		return -errno;
	int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		l->sigfd = fd;
		int r = loop_fd_set(l, fd, LOOP_READ, signal_ready, NULL);
		if (r != 0)
			return r;
	}
	l->sigs[signo].cb = cb;
	l->sigs[signo].arg = arg;
	return 0;
}

static void
child_ready(struct loop *l, int fd, int mask, void *arg)
{
	struct child *c = arg;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* spurious: not exited yet */
	int wstatus = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
	loop_fd_del(l, c->pidfd);
	close(c->pidfd);
	loop_child_cb *cb = c->cb;
	void *cbarg = c->arg;
	pid_t pid = c->pid;
	free(c);
	cb(l, pid, wstatus, cbarg);
}

int
loop_child_add(struct loop *l, pid_t pid, loop_child_cb *cb, void *arg)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	struct child *c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->pidfd = fd;
	c->cb = cb;
	c->arg = arg;
	int r = loop_fd_set(l, fd, LOOP_READ, child_ready, c);
	if (r != 0) {
		close(fd);
		free(c);
	}
	return r;
}

static int
next_timeout(struct loop *l, int cap)
{
	if (l->nheap == 0)
		return cap;
	uint64_t now = now_mono_ms();
	uint64_t d = l->heap[0]->deadline;
	int t = d <= now ? 0 : (d - now > 0x7fffffff ? 0x7fffffff : (int)(d - now));
	return (cap >= 0 && cap < t) ? cap : t;
}

static void
run_timers(struct loop *l)
{
	uint64_t now = now_mono_ms();
	/* Timers added by callbacks get a later seq; bounding by the count present now
	 * keeps a callback that re-arms itself with 0 ms from starving fds. */
	size_t budget = l->nheap;
	while (budget-- > 0 && l->nheap > 0 && l->heap[0]->deadline <= now) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, 0);
		loop_timer_cb *cb = t->cb;
		void *arg = t->arg;
		free(t);
		cb(l, arg);
	}
}

int
loop_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[128];
	int n = epoll_wait(l->epfd, evs, 128, next_timeout(l, timeout_ms));
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		if ((size_t)fd >= l->nfds || !l->fds[fd].registered || l->fds[fd].cb == NULL)
			continue; /* removed by an earlier handler in this batch */
		int mask = 0;
		if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			mask |= LOOP_READ;
		if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			mask |= LOOP_WRITE;
		mask &= l->fds[fd].mask;
		if (mask)
			l->fds[fd].cb(l, fd, mask, l->fds[fd].arg);
	}
	run_timers(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	int r = 0;
	l->stop = false;
	while (!l->stop && r == 0)
		r = loop_once(l, -1);
	return r;
}

void
loop_stop(struct loop *l)
{
	l->stop = true;
}

bool
loop_stopping(struct loop *l)
{
	return l->stop;
}
