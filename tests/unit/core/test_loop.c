/* Event loop: timer ordering and cancellation, fd readiness, signals, children. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static char order[16];
static size_t norder;

static void
mark(struct loop *l, void *arg)
{
	order[norder++] = *(const char *)arg;
	if (norder == 3)
		loop_stop(l);
}

static void
test_timers_order_and_cancel(void **state)
{
	struct loop *l = loop_new();
	norder = 0;
	loop_timer_add(l, 20, mark, "c");
	loop_timer_add(l, 0, mark, "a");
	struct loop_timer *x = loop_timer_add(l, 5, mark, "x");
	loop_timer_add(l, 0, mark, "b"); /* same deadline as "a": FIFO */
	loop_timer_cancel(l, x);
	loop_run(l);
	assert_int_equal(norder, 3);
	assert_memory_equal(order, "abc", 3);
	loop_free(l);
}

static int got_fd_mask;

static void
on_readable(struct loop *l, int fd, int mask, void *arg)
{
	char c;
	got_fd_mask = mask;
	assert_int_equal(read(fd, &c, 1), 1);
	assert_int_equal(c, 'z');
	loop_stop(l);
}

static void
test_fd_readiness(void **state)
{
	struct loop *l = loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_fd_set(l, p[0], LOOP_READ, on_readable, NULL), 0);
	assert_int_equal(write(p[1], "z", 1), 1);
	loop_run(l);
	assert_true(got_fd_mask & LOOP_READ);
	loop_fd_del(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static int got_signal;

static void
on_signal(struct loop *l, int signo, void *arg)
{
	got_signal = signo;
	loop_stop(l);
}

static void
test_signalfd(void **state)
{
	struct loop *l = loop_new();
	assert_int_equal(loop_signal_add(l, SIGUSR1, on_signal, NULL), 0);
	kill(getpid(), SIGUSR1);
	loop_run(l);
	assert_int_equal(got_signal, SIGUSR1);
	loop_free(l);
}

static int child_status = -1;
static pid_t child_pid;

static void
on_child(struct loop *l, pid_t pid, int wstatus, void *arg)
{
	child_pid = pid;
	child_status = wstatus;
	loop_stop(l);
}

static void
test_child_exit(void **state)
{
	struct loop *l = loop_new();
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	assert_int_equal(loop_child_add(l, pid, on_child, NULL), 0);
	loop_run(l);
	assert_int_equal(child_pid, pid);
	assert_true(WIFEXITED(child_status));
	assert_int_equal(WEXITSTATUS(child_status), 7);
	/* reaped: no zombie left behind */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_order_and_cancel),
	    cmocka_unit_test(test_fd_readiness),
	    cmocka_unit_test(test_signalfd),
	    cmocka_unit_test(test_child_exit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
