/* zt_tree.h - header-only helpers for the process-tree zdtm programs (tree_*.c).
 *
 * Conventions of the tree tests:
 *   - only the root speaks the protocol (READY, PASS, FAIL on fd 1); the harness signals
 *     only the root, which then tells its children (kill(SIGTERM), the handler of zt.c is
 *     inherited across fork) and collects their verdicts from their exit status;
 *   - a child never calls zt_fail()/zt_pass() (exit() would run the root's atexit work and
 *     speak the protocol): it exits with _exit(), with a distinctive status when its checks
 *     pass, and zt_child_fail() (a "# " line on fd 2, ignored by the harness, and a failure
 *     status) when one does not;
 *   - every process reaps its own children before it exits, so nothing outlives the root
 *     (the harness, a child subreaper, would inherit any orphan and count it as left
 *     behind); on a failure the root SIGKILLs and reaps the processes it registered
 *     (zt_tree_fail: its children, and grandchildren it knows of) before reporting;
 *   - everything the harness snapshots (the set of processes, their ids and maps) is set up
 *     before READY: the root waits for its children's "ready" on a pipe or with waitid,
 *     never with a fixed sleep.
 */
#ifndef ZT_TREE_H
#define ZT_TREE_H

#include "zt.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZT_TREE_MAX 256
#define ZT_TREE_WAIT_MS 10000 /* how long the root waits for a child to exit once told to */

/* Processes the root kills on a failure (children and, if known, grandchildren). */
static pid_t zt_tree_pids[ZT_TREE_MAX];
static int zt_tree_npids;

static inline void zt_tree_add(pid_t pid)
{
	if (zt_tree_npids < ZT_TREE_MAX)
		zt_tree_pids[zt_tree_npids++] = pid;
}

/* SIGKILL every registered process and reap them, so that a failing root leaves nothing
 * behind. The root becomes a child subreaper first: a grandchild whose parent is killed
 * is then handed to the root, which reaps it too (only on this way out). */
static inline void zt_tree_kill_all(void)
{
	int64_t end = zt_now_ns() + 2000 * 1000000LL;
	int left;

	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	for (int i = 0; i < zt_tree_npids; i++)
		if (zt_tree_pids[i] > 0)
			kill(zt_tree_pids[i], SIGKILL);
	do {
		left = 0;
		for (int i = 0; i < zt_tree_npids; i++) {
			char path[32];
			pid_t p = zt_tree_pids[i];
			if (p <= 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%d", (int)p);
			if (waitpid(p, NULL, WNOHANG | __WALL) == p || access(path, F_OK) != 0)
				zt_tree_pids[i] = 0; /* reaped here, or by its own parent */
			else
				left++;
		}
		if (left) {
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	} while (left && zt_now_ns() < end);
	zt_tree_npids = 0;
}

/* zt_fail() for the root: kills and reaps the registered processes first. */
__attribute__((noreturn, format(printf, 1, 2), unused)) static void zt_tree_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	zt_tree_kill_all();
	zt_fail("%s", msg);
}

/* In a child: a "# " diagnostic line on fd 2 (not protocol), then _exit(code). */
__attribute__((noreturn, format(printf, 2, 3), unused)) static void zt_child_fail(int code, const char *fmt, ...)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "# child %d: ", (int)getpid());
	va_list ap;

	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(msg);
	for (int i = 0; i < n; i++)
		if (msg[i] == '\n')
			msg[i] = ' ';
	msg[n++] = '\n';
	(void)zt_write_all(2, msg, (size_t)n);
	_exit(code);
}

/* fork(); the parent registers the child for zt_tree_fail. */
static inline pid_t zt_tree_fork(void)
{
	pid_t p = fork();

	if (p < 0)
		zt_tree_fail("fork: %s", strerror(errno));
	if (p > 0)
		zt_tree_add(p);
	return p;
}

/* waitpid(pid) for up to timeout_ms (EINTR-proof: zt's SIGTERM handler has no SA_RESTART).
 * 1 with *status on exit, 0 on timeout, -1 on error (errno set, e.g. ECHILD: not our child). */
static inline int zt_tree_wait(pid_t pid, int *status, long timeout_ms)
{
	int64_t end = zt_now_ns() + timeout_ms * 1000000LL;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (zt_now_ns() >= end)
			return 0;
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static inline const char *zt_status_text(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
			 WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(buf, len, "wait status %#x", st);
	return buf;
}

/* Forget pid in the kill list (it has been reaped: its pid may be reused). */
static inline void zt_tree_forget(pid_t pid)
{
	for (int i = 0; i < zt_tree_npids; i++)
		if (zt_tree_pids[i] == pid)
			zt_tree_pids[i] = 0;
}

/* Root: wait for child pid (what names it) and return its raw wait status; fails the test
 * if it is not our child or does not exit in time. */
static inline int zt_tree_reap(pid_t pid, const char *what)
{
	int st = 0, r = zt_tree_wait(pid, &st, ZT_TREE_WAIT_MS);

	if (r < 0)
		zt_tree_fail("waitpid(%s, pid %d): %s", what, (int)pid, strerror(errno));
	if (r == 0)
		zt_tree_fail("%s (pid %d) did not exit within %d ms", what, (int)pid, ZT_TREE_WAIT_MS);
	zt_tree_forget(pid);
	return st;
}

/* Root: wait for child pid and require a normal exit with status code. */
static inline void zt_tree_expect_exit(pid_t pid, int code, const char *what)
{
	char buf[96];
	int st = zt_tree_reap(pid, what);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
		zt_tree_fail("%s (pid %d) finished with %s, expected exit status %d (see the '# child' line, if any)",
			     what, (int)pid, zt_status_text(st, buf, sizeof(buf)), code);
}

/* Root: pid must still be a live child of ours (waitpid WNOHANG: 0 = alive child). */
static inline void zt_tree_expect_alive_child(pid_t pid, const char *what)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	char buf[96];

	if (r == 0)
		return;
	if (r == pid) {
		zt_tree_forget(pid);
		zt_tree_fail("%s (pid %d) is no longer running: %s", what, (int)pid, zt_status_text(st, buf, sizeof(buf)));
	}
	zt_tree_fail("%s (pid %d) is not our child any more: waitpid: %s", what, (int)pid, strerror(errno));
}

/* read() exactly len bytes (EINTR retried). Returns len, or the short count at EOF, or -1. */
static inline ssize_t zt_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The state letter and parent of pid from /proc/PID/stat; 0 on success. */
static inline int zt_proc_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	long n;
	int pp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %d", state, &pp) != 2)
		return -1;
	if (ppid)
		*ppid = (pid_t)pp;
	return 0;
}

/* The system call pid is blocked in (/proc/PID/syscall, first field): -1 if it runs in
 * user space, -2 on error. */
static inline long zt_syscall_of(pid_t pid)
{
	char path[64], buf[256];
	long n;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -2;
	buf[n] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	return strtol(buf, NULL, 10);
}

/* Wait (up to timeout_ms) until pid sleeps (state S) in system call nr on a few polls in a
 * row: then its setup is over and /proc shows what the dump will see. 1 if so, else 0. */
static inline int zt_wait_in_syscall(pid_t pid, long nr, long timeout_ms)
{
	int64_t end = zt_now_ns() + timeout_ms * 1000000LL;
	int stable = 0;

	for (;;) {
		char state = '?';
		if (zt_syscall_of(pid) == nr && zt_proc_stat(pid, &state, NULL) == 0 && state == 'S') {
			if (++stable >= 3)
				return 1;
		} else {
			stable = 0;
		}
		if (zt_now_ns() >= end)
			return 0;
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* A byte pattern that depends on a seed and the position (distinct streams per seed). */
static inline uint8_t zt_pat(uint32_t seed, uint64_t off)
{
	uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + off * 0xBF58476D1CE4E5B9ULL + 1;
	x ^= x >> 31;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 29;
	return (uint8_t)x;
}

static inline void zt_pat_fill(void *buf, size_t len, uint32_t seed, uint64_t base)
{
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		b[i] = zt_pat(seed, base + i);
}

/* Index of the first byte that does not match the pattern, or -1 if all do. */
static inline long zt_pat_check(const void *buf, size_t len, uint32_t seed, uint64_t base)
{
	const volatile uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != zt_pat(seed, base + i))
			return (long)i;
	return -1;
}

#endif /* ZT_TREE_H */
