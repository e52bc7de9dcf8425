/* threads_ids.c - process and thread ids survive the dump.
 *
 * Before READY every thread (N workers and main) records getpid() (glibc and raw syscall),
 * gettid() (raw syscall) and pthread_self(), and checks that glibc's idea of its tid
 * (pthread_kill(pthread_self(), SIGUSR1): the handler records the gettid() it runs in)
 * is its kernel tid. /proc/self/task must list exactly the recorded tids.
 * After SIGTERM (after the restore) each thread, in itself, checks all of that again;
 * main checks /proc/self/task, pthread_kill(thread, 0) for each worker, and that each
 * /proc/self/task/TID/status says Pid TID, Tgid getpid().
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define N 4

struct ids {
	pthread_t thread; /* as returned by pthread_create (workers) */
	pthread_t self;   /* pthread_self() in the thread */
	pid_t tid, pid, sys_pid;
	int phase_done;   /* last phase this thread completed */
	long loops;
} __attribute__((aligned(64)));

static struct ids ids[N + 1]; /* [N] is main */
static int phase;             /* 1: record (start), 2: re-check */
static __thread volatile pid_t handled_in; /* written by the signal handler */
static __thread volatile int handled_count;

static void usr1_handler(int sig)
{
	(void)sig;
	handled_in = zt_gettid();
	handled_count++;
}

static void record(struct ids *me)
{
	me->self = pthread_self();
	me->tid = zt_gettid();
	me->pid = getpid();
	me->sys_pid = (pid_t)syscall(SYS_getpid);
}

static int check_self(int i, const char *when)
{
	struct ids *me = &ids[i];
	int before = handled_count;
	pid_t tid = zt_gettid();

	if (tid != me->tid)
		zt_thr_error("thread %d %s: gettid() %d, was %d", i, when, (int)tid, (int)me->tid);
	else if (!pthread_equal(pthread_self(), me->self))
		zt_thr_error("thread %d %s: pthread_self() %#lx, was %#lx", i, when, (unsigned long)pthread_self(),
			     (unsigned long)me->self);
	else if (getpid() != me->pid || (pid_t)syscall(SYS_getpid) != me->sys_pid || me->pid != me->sys_pid)
		zt_thr_error("thread %d %s: getpid() %d, syscall %d; were %d, %d", i, when, (int)getpid(),
			     (int)syscall(SYS_getpid), (int)me->pid, (int)me->sys_pid);
	else if (pthread_kill(pthread_self(), SIGUSR1) != 0)
		zt_thr_error("thread %d %s: pthread_kill(self, SIGUSR1) failed", i, when);
	else if (handled_count != before + 1 || handled_in != tid)
		zt_thr_error("thread %d %s: pthread_kill(self) ran the handler %d times, in tid %d (own tid %d)", i,
			     when, handled_count - before, (int)handled_in, (int)tid);
	else
		return 0;
	return -1;
}

static void *worker_main(void *arg)
{
	int i = (int)(long)arg;
	int done = 0;

	record(&ids[i]);
	while (done < 2) {
		struct timespec ts = { 0, 3 * 1000 * 1000 };
		int p = __atomic_load_n(&phase, __ATOMIC_ACQUIRE);

		if (p > done) {
			if (check_self(i, p == 1 ? "before READY" : "after SIGTERM") != 0)
				return NULL;
			done = p;
			__atomic_store_n(&ids[i].phase_done, done, __ATOMIC_RELEASE);
		}
		__atomic_add_fetch(&ids[i].loops, 1, __ATOMIC_RELEASE);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void run_phase(int p)
{
	int64_t end = zt_now_ns() + 5000000000LL;

	__atomic_store_n(&phase, p, __ATOMIC_RELEASE);
	for (int i = 0; i < N; i++)
		while (__atomic_load_n(&ids[i].phase_done, __ATOMIC_ACQUIRE) < p) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("thread %d did not complete check phase %d within 5 s", i, p);
			zt_sleep_ms(1);
		}
}

static void check_from_main(const char *when)
{
	pid_t tids[N + 1];
	char why[256];

	for (int i = 0; i <= N; i++) {
		char v[64];
		tids[i] = ids[i].tid;
		if (zt_thr_status_field(ids[i].tid, "Pid", v, sizeof(v)) != 0 || atoi(v) != ids[i].tid)
			zt_fail("%s: /proc/self/task/%d/status has Pid %s", when, (int)ids[i].tid, v);
		if (zt_thr_status_field(ids[i].tid, "Tgid", v, sizeof(v)) != 0 || atoi(v) != ids[N].pid)
			zt_fail("%s: /proc/self/task/%d/status has Tgid %s, expected %d", when, (int)ids[i].tid, v,
				(int)ids[N].pid);
		if (i < N && pthread_kill(ids[i].thread, 0) != 0)
			zt_fail("%s: pthread_kill(thread %d, 0) fails", when, i);
		if (i < N && !pthread_equal(ids[i].thread, ids[i].self))
			zt_fail("%s: thread %d: pthread_create gave %#lx, pthread_self() in it %#lx", when, i,
				(unsigned long)ids[i].thread, (unsigned long)ids[i].self);
	}
	if (zt_thr_tasks_equal(tids, N + 1, why, sizeof(why)) != 0)
		zt_fail("%s: %s", when, why);
}

int main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = usr1_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		zt_fail("sigaction");
	record(&ids[N]);
	if (ids[N].tid != ids[N].pid)
		zt_fail("main thread tid %d != pid %d", (int)ids[N].tid, (int)ids[N].pid);
	for (long i = 0; i < N; i++)
		zt_thr_create(&ids[i].thread, worker_main, (void *)i);
	run_phase(1);
	if (check_self(N, "before READY") != 0)
		zt_thr_check_errors();
	for (int i = 0; i <= N; i++)
		for (int j = 0; j < i; j++)
			if (ids[i].tid == ids[j].tid || pthread_equal(ids[i].self, ids[j].self))
				zt_fail("threads %d and %d share tid %d or pthread_t", i, j, (int)ids[i].tid);
	check_from_main("before READY");

	zt_ready();
	zt_wait_stop();

	/* after SIGTERM (after the restore) */
	zt_thr_check_errors();
	check_from_main("after SIGTERM");
	if (check_self(N, "after SIGTERM") != 0)
		zt_thr_check_errors();
	run_phase(2);
	for (int i = 0; i < N; i++)
		zt_thr_join(ids[i].thread, NULL);
	zt_thr_check_errors();
	zt_pass();
}
