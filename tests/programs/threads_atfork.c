/* threads_atfork.c - pthread_atfork handlers and fork() of a multi-threaded process.
 *
 * Before READY: pthread_atfork(prepare, parent, child) is registered; the handlers lock
 * (prepare) and unlock (parent, child) `work_lock`, which a second thread takes all the
 * time to bump a counter, and count their calls. No handler may have run by READY.
 * After SIGTERM (after the restore): the worker must still count; then main fork()s:
 *   - parent: prepare ran once, parent once, child not at all (in the parent), the
 *     worker goes on counting, and the child exits 0;
 *   - child: prepare once, child once, parent not at all; it is single-threaded
 *     (/proc/self/task), gettid() == getpid() != the parent's pid, getppid() is the parent;
 *     work_lock is free (pthread_mutex_timedlock); malloc works; it can create and join a
 *     thread with its own TLS; a second fork() from the child works. It reports through
 *     its exit status (0 = fine, otherwise the number of the failed check, described by
 *     the parent).
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <sys/wait.h>
#include <time.h>

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static long work_count; /* under work_lock; also read atomically */
static int stop_worker;
static volatile int n_prepare, n_parent, n_child; /* written by the atfork handlers */
static volatile pid_t prepare_tid;
static __thread int tls_probe = 5;

static void on_prepare(void)
{
	pthread_mutex_lock(&work_lock);
	n_prepare++;
	prepare_tid = zt_gettid();
}

static void on_parent(void)
{
	n_parent++;
	pthread_mutex_unlock(&work_lock);
}

static void on_child(void)
{
	n_child++;
	pthread_mutex_unlock(&work_lock);
}

static void *worker_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop_worker, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 200 * 1000 };
		pthread_mutex_lock(&work_lock);
		__atomic_store_n(&work_count, work_count + 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&work_lock);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void *child_thread(void *arg)
{
	tls_probe = 77;
	return (void *)((long)arg + 1);
}

static const char *child_checks[] = {
	"",
	"prepare handler did not run exactly once before fork",
	"child handler did not run exactly once in the child",
	"parent handler ran in the child",
	"the child is not single-threaded",
	"gettid() != getpid() in the child, or the child has the parent's pid",
	"getppid() in the child is not the parent",
	"work_lock is not free in the child (child handler did not unlock it)",
	"malloc/free failed in the child",
	"pthread_create in the child failed",
	"the child's thread returned a wrong value or clobbered main's TLS",
	"fork() in the child failed, or the grandchild did not exit 0",
	"prepare handler ran in another thread than the forking one",
};

static int child_main(pid_t parent, pid_t forker_tid)
{
	pid_t t[4];
	struct timespec dl;
	pthread_t th;
	void *ret = NULL;
	char *p;
	pid_t g;
	int st;

	if (n_prepare != 1)
		return 1;
	if (n_child != 1)
		return 2;
	if (n_parent != 0)
		return 3;
	if (prepare_tid != forker_tid)
		return 12;
	if (zt_thr_tasks(t, 4) != 1)
		return 4;
	if (zt_gettid() != getpid() || getpid() == parent)
		return 5;
	if (getppid() != parent)
		return 6;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 2;
	if (pthread_mutex_timedlock(&work_lock, &dl) != 0)
		return 7;
	work_count = 0;
	pthread_mutex_unlock(&work_lock);
	p = malloc(1 << 20);
	if (!p)
		return 8;
	memset(p, 0x5a, 1 << 20);
	free(p);
	tls_probe = 1;
	if (pthread_create(&th, NULL, child_thread, (void *)41L) != 0)
		return 9;
	if (pthread_join(th, &ret) != 0 || ret != (void *)42L || tls_probe != 1)
		return 10;
	g = fork();
	if (g < 0)
		return 11;
	if (g == 0)
		_exit(n_child == 2 && n_prepare == 2 ? 0 : 1);
	if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 11;
	return 0;
}

int main(void)
{
	pthread_t worker;
	long at_term;
	int64_t end;
	pid_t child, parent = getpid();
	int status, err;

	if ((err = pthread_atfork(on_prepare, on_parent, on_child)) != 0)
		zt_fail("pthread_atfork: %s", strerror(err));
	zt_thr_create(&worker, worker_main, NULL);
	end = zt_now_ns() + 5000000000LL;
	while (__atomic_load_n(&work_count, __ATOMIC_RELAXED) < 10) {
		if (zt_now_ns() > end)
			zt_fail("the worker did not start within 5 s");
		zt_sleep_ms(1);
	}
	if (n_prepare || n_parent || n_child)
		zt_fail("atfork handlers ran before any fork: %d %d %d", n_prepare, n_parent, n_child);

	zt_ready();
	zt_wait_stop();

	/* after SIGTERM (after the restore) */
	if (n_prepare || n_parent || n_child)
		zt_fail("atfork handlers ran without a fork: prepare %d parent %d child %d", n_prepare, n_parent,
			n_child);
	at_term = __atomic_load_n(&work_count, __ATOMIC_RELAXED);
	end = zt_now_ns() + 5000000000LL;
	while (__atomic_load_n(&work_count, __ATOMIC_RELAXED) < at_term + 10) {
		if (zt_now_ns() > end)
			zt_fail("the worker made no progress within 5 s after SIGTERM");
		zt_sleep_ms(1);
	}

	child = fork();
	if (child < 0)
		zt_fail("fork: %s", strerror(errno));
	if (child == 0)
		_exit(child_main(parent, parent));
	if (n_prepare != 1 || n_parent != 1 || n_child != 0)
		zt_fail("in the parent after fork: prepare ran %d times, parent %d, child %d (expected 1, 1, 0)",
			n_prepare, n_parent, n_child);
	if (prepare_tid != zt_gettid())
		zt_fail("prepare handler ran in tid %d, not in the forking thread %d", (int)prepare_tid,
			(int)zt_gettid());
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			zt_fail("waitpid(%d): %s", (int)child, strerror(errno));
	}
	if (WIFSIGNALED(status))
		zt_fail("the child was killed by signal %d", WTERMSIG(status));
	if (!WIFEXITED(status))
		zt_fail("the child did not exit normally (status %#x)", status);
	if (WEXITSTATUS(status) != 0) {
		int c = WEXITSTATUS(status);
		zt_fail("the child failed check %d: %s", c,
			c < (int)(sizeof(child_checks) / sizeof(child_checks[0])) ? child_checks[c] : "?");
	}

	/* the parent's worker survived the fork and work_lock is usable */
	at_term = __atomic_load_n(&work_count, __ATOMIC_RELAXED);
	end = zt_now_ns() + 5000000000LL;
	while (__atomic_load_n(&work_count, __ATOMIC_RELAXED) < at_term + 10) {
		if (zt_now_ns() > end)
			zt_fail("the worker made no progress within 5 s after the fork");
		zt_sleep_ms(1);
	}
	__atomic_store_n(&stop_worker, 1, __ATOMIC_RELEASE);
	zt_thr_join(worker, NULL);
	zt_pass();
}
