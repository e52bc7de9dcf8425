/* zt_thr.h - header-only helpers for the multi-threaded zdtm programs (threads_*.c).
 *
 * Conventions of the thread tests:
 *   - worker threads are created with SIGTERM blocked (zt_thr_create), so the harness's
 *     SIGTERM is taken by the main thread: its zt_wait_stop() returns, and the workers go
 *     on until main tells them to stop with a flag of the test's own;
 *   - a worker does not call zt_fail() (exit() racing with the other threads): it records
 *     the first problem with zt_thr_error() and main reports it (zt_thr_check_errors());
 *   - "progress after restore" is checked after SIGTERM (which the harness sends only
 *     after the restore), not only after READY (the dump may come later than READY).
 */
#ifndef ZT_THR_H
#define ZT_THR_H

#include "zt.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline pid_t zt_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The first problem found by any thread (reported by main). */
static pthread_mutex_t zt_thr_err_lock = PTHREAD_MUTEX_INITIALIZER;
static char zt_thr_err_msg[512];
static volatile int zt_thr_err_set;

__attribute__((format(printf, 1, 2), unused)) static void zt_thr_error(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&zt_thr_err_lock);
	if (!zt_thr_err_set) {
		va_start(ap, fmt);
		vsnprintf(zt_thr_err_msg, sizeof(zt_thr_err_msg), fmt, ap);
		va_end(ap);
		__atomic_store_n(&zt_thr_err_set, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&zt_thr_err_lock);
}

static inline int zt_thr_failed(void)
{
	return __atomic_load_n(&zt_thr_err_set, __ATOMIC_ACQUIRE);
}

/* zt_fail() with the first recorded thread error, if any. */
static inline void zt_thr_check_errors(void)
{
	if (zt_thr_failed()) {
		pthread_mutex_lock(&zt_thr_err_lock);
		zt_fail("%s", zt_thr_err_msg);
	}
}

/* pthread_create with SIGTERM (and the signals in extra, may be NULL) blocked in the new
 * thread; attr may be NULL. Fails the test on error. */
static inline void zt_thr_create_masked(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
					const sigset_t *extra)
{
	sigset_t block, old;
	int err;

	if (extra)
		block = *extra;
	else
		sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	err = pthread_create(t, attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		zt_fail("pthread_create: %s", strerror(err));
}

static inline void zt_thr_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	zt_thr_create_masked(t, NULL, fn, arg, NULL);
}

static inline void zt_thr_join(pthread_t t, void **ret)
{
	int err = pthread_join(t, ret);

	if (err)
		zt_fail("pthread_join: %s", strerror(err));
}

/* The tids listed in /proc/self/task, sorted ascending; returns how many (at most cap),
 * or -1 on error. */
static inline int zt_thr_tasks(pid_t *out, int cap)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (n < cap)
			out[n] = (pid_t)atoi(e->d_name);
		n++;
	}
	closedir(d);
	if (n > cap)
		return -1;
	for (int i = 1; i < n; i++) /* insertion sort: small lists, or nearly sorted */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			pid_t x = out[j];
			out[j] = out[j - 1];
			out[j - 1] = x;
		}
	return n;
}

static inline int zt_thr_cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return x < y ? -1 : x > y;
}

/* 0 if /proc/self/task holds exactly the n tids in want (any order), else -1 with a
 * description in why. */
static inline int zt_thr_tasks_equal(const pid_t *want, int n, char *why, size_t whylen)
{
	pid_t *have = malloc(sizeof(pid_t) * (size_t)(n + 64));
	pid_t *w = malloc(sizeof(pid_t) * (size_t)(n > 0 ? n : 1));
	int got, rc = 0;

	if (!have || !w)
		zt_fail("malloc");
	got = zt_thr_tasks(have, n + 64);
	memcpy(w, want, sizeof(pid_t) * (size_t)n);
	qsort(w, (size_t)n, sizeof(pid_t), zt_thr_cmp_pid);
	if (got != n) {
		snprintf(why, whylen, "/proc/self/task lists %d threads, expected %d", got, n);
		rc = -1;
	} else {
		for (int i = 0; i < n; i++)
			if (have[i] != w[i]) {
				snprintf(why, whylen, "/proc/self/task has tid %d where %d was expected", (int)have[i],
					 (int)w[i]);
				rc = -1;
				break;
			}
	}
	free(have);
	free(w);
	return rc;
}

/* The system call thread tid of this process is blocked in, from /proc/self/task/TID/syscall
 * (first field); -1 if it runs in user space ("running"), -2 on error. */
static inline long zt_thr_syscall_of(pid_t tid)
{
	char path[64], buf[256];
	long n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -2;
	buf[n] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	return strtol(buf, NULL, 10);
}

/* Wait (up to timeout_ms) until thread tid sits in system call nr1 or nr2 (pass -3 for an
 * unused one) on a few polls in a row. Returns 1 when it does, else 0 with the last value
 * seen in *last (-1 running in user space, -2 error, or another system call number). */
static inline int zt_thr_wait_in_syscall(pid_t tid, long nr1, long nr2, long timeout_ms, long *last)
{
	int64_t end = zt_now_ns() + timeout_ms * 1000000LL;
	int stable = 0;

	for (;;) {
		long cur = zt_thr_syscall_of(tid);
		if (last)
			*last = cur;
		if (cur == nr1 || cur == nr2) {
			if (++stable >= 3)
				return 1;
		} else {
			stable = 0;
		}
		if (zt_now_ns() >= end)
			return 0;
		zt_sleep_ms(2);
	}
}

/* One field ("SigBlk", "SigPnd", "Cpus_allowed_list", ...) of /proc/self/task/TID/status,
 * copied to out; 0 on success. */
static inline int zt_thr_status_field(pid_t tid, const char *key, char *out, size_t outlen)
{
	char path[64], buf[4096];
	size_t klen = strlen(key);
	long n;
	char *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			char *v = p + klen + 1, *eol;
			while (*v == ' ' || *v == '\t')
				v++;
			eol = strchr(v, '\n');
			if (!eol)
				eol = v + strlen(v);
			snprintf(out, outlen, "%.*s", (int)(eol - v), v);
			return 0;
		}
	}
	return -1;
}

/* A hex signal set from /proc status (SigBlk etc.) as a 64-bit mask (bit s-1 = signal s). */
static inline int zt_thr_status_sigmask(pid_t tid, const char *key, unsigned long long *mask)
{
	char v[64];

	if (zt_thr_status_field(tid, key, v, sizeof(v)) != 0)
		return -1;
	*mask = strtoull(v, NULL, 16);
	return 0;
}

/* The thread's own signal mask as a 64-bit mask. */
static inline unsigned long long zt_thr_mask_bits(const sigset_t *s)
{
	unsigned long long m = 0;

	for (int i = 1; i <= 64; i++)
		if (sigismember(s, i) == 1)
			m |= 1ULL << (i - 1);
	return m;
}

#define ZT_SIGBIT(s) (1ULL << ((s) - 1))

#endif /* ZT_THR_H */
