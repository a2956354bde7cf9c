/* A small single-threaded epoll event loop (Redis ae, h2o evloop): fd readiness,
 * one-shot timers in a binary heap, signals through signalfd, and child exit
 * through pidfd. Everything a process does waits here, so there is one place to
 * reason about ordering and one syscall set for seccomp. */
#ifndef AL_LOOP_H
#define AL_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct loop_timer;

enum { LOOP_READ = 1, LOOP_WRITE = 2 };

/* mask: LOOP_READ|LOOP_WRITE that fired; LOOP_READ is also set on HUP/ERR so the
 * handler's read sees the EOF or the error. */
typedef void loop_fd_cb(struct loop *l, int fd, int mask, void *arg);
typedef void loop_timer_cb(struct loop *l, void *arg);
typedef void loop_signal_cb(struct loop *l, int signo, void *arg);
typedef void loop_child_cb(struct loop *l, pid_t pid, int wstatus, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Registers or changes interest for fd (mask 0 keeps it registered but silent). */
int loop_fd_set(struct loop *l, int fd, int mask, loop_fd_cb *cb, void *arg);
void loop_fd_del(struct loop *l, int fd);

/* One-shot timer after delay_ms; returns a handle valid until it fires or is cancelled. */
struct loop_timer *loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb *cb, void *arg);
void loop_timer_cancel(struct loop *l, struct loop_timer *t); /* accepts NULL */

/* Blocks signo and delivers it through signalfd to cb. */
int loop_signal_add(struct loop *l, int signo, loop_signal_cb *cb, void *arg);

/* Watches a child through a pidfd; cb gets its wait status once it exits (reaped). */
int loop_child_add(struct loop *l, pid_t pid, loop_child_cb *cb, void *arg);

/* Runs until loop_stop(). */
int loop_run(struct loop *l);
/* Runs one iteration waiting at most timeout_ms (-1: until something happens). */
int loop_once(struct loop *l, int timeout_ms);
void loop_stop(struct loop *l);
bool loop_stopping(struct loop *l);

#endif
