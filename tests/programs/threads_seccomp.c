/* threads_seccomp.c - seccomp filters of each thread still filter after restore.
 *
 * Before READY: no_new_privs, then filter 1 (getppid fails with EPERM) on the main thread;
 * a second thread is started (it inherits filter 1); then filter 2 (getpgid fails with
 * EACCES, logged: SECCOMP_FILTER_FLAG_LOG) on the main thread only.
 * After SIGTERM: in the main thread getppid fails with EPERM and getpgid with EACCES; in the
 * second thread getppid fails with EPERM and getpgid works; /proc shows 2 filters for the
 * main thread and 1 for the other; other system calls work.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void deny(long nr, int err, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) != 0)
		zt_fail("seccomp: %s", strerror(errno));
}

/* 0 if the call failed with `err` (or succeeded, for err 0), else a description. */
static const char *expect(long nr, int err)
{
	errno = 0;
	long r = syscall(nr, 0);
	if (err == 0)
		return r >= 0 ? NULL : "failed";
	return r == -1 && errno == err ? NULL : "was not filtered";
}

static int filters_of(pid_t tid)
{
	char path[64], buf[4096], *p;
	long n;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nSeccomp_filters:");
	return p ? atoi(p + 17) : -1;
}

static volatile int thread_result = -1;
static volatile pid_t thread_tid;
static volatile int go;

static void *worker(void *arg)
{
	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	while (!go)
		zt_sleep_ms(5);
	thread_result = expect(SYS_getppid, EPERM) ? 1 : expect(SYS_getpgid, 0) ? 2 : 0;
	return NULL;
}

int main(void)
{
	pthread_t t;
	const char *bad;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		zt_fail("no_new_privs: %s", strerror(errno));
	deny(SYS_getppid, EPERM, 0);
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		zt_fail("pthread_create failed");
	while (!thread_tid)
		zt_sleep_ms(1);
	deny(SYS_getpgid, EACCES, SECCOMP_FILTER_FLAG_LOG);
	if (filters_of((pid_t)syscall(SYS_gettid)) != 2 || filters_of(thread_tid) != 1)
		zt_fail("setup: the threads have %d and %d filters", filters_of((pid_t)syscall(SYS_gettid)),
			filters_of(thread_tid));

	zt_ready();
	zt_wait_stop();

	if ((bad = expect(SYS_getppid, EPERM)))
		zt_fail("getppid in the main thread %s (filter 1)", bad);
	if ((bad = expect(SYS_getpgid, EACCES)))
		zt_fail("getpgid in the main thread %s (filter 2)", bad);
	if (filters_of((pid_t)syscall(SYS_gettid)) != 2 || filters_of(thread_tid) != 1)
		zt_fail("the threads have %d and %d filters, expected 2 and 1", filters_of((pid_t)syscall(SYS_gettid)),
			filters_of(thread_tid));
	go = 1;
	pthread_join(t, NULL);
	if (thread_result == 1)
		zt_fail("getppid in the second thread was not filtered (filter 1)");
	if (thread_result == 2)
		zt_fail("getpgid in the second thread failed: it has filter 2, which only the main thread installed");
	if (getpid() <= 0)
		zt_fail("getpid fails");
	zt_pass();
}
