/* threads_backtrace.c - threads parked in distinctively named functions, for
 * `ckpt info --backtrace` (tests/backtrace.py); also a zdtm program of its own.
 *
 * Built with -O0 -g -fno-omit-frame-pointer -fno-inline -fno-optimize-sibling-calls; the
 * functions are global and noinline, so each appears as its own frame:
 *   main thread  main -> zt_bt_main_loop                (nanosleep loop until SIGTERM)
 *   "bt-alpha"   zt_bt_alpha_start -> zt_bt_waiting_in_alpha   (pthread_cond_wait)
 *   "bt-beta"    zt_bt_beta_start -> zt_bt_beta_outer -> zt_bt_waiting_in_beta (nanosleep loop)
 * Before READY it writes bt.txt in its working directory: one "ROLE TID" line per
 * thread (main, alpha, beta), and waits until alpha is blocked in its futex and beta
 * sleeps (/proc/self/task/TID/syscall).
 * After SIGTERM: both threads must still be inside their functions (a flag each sets on
 * entry and clears on return), are woken and stopped, and must return their magic values
 * through the whole call chain.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <fcntl.h>
#include <time.h>

#define NOINL __attribute__((noinline, used))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stop_alpha, stop_beta;
static int in_alpha, in_beta;
static pid_t tid_alpha, tid_beta;
static long beta_loops;

NOINL long zt_bt_waiting_in_alpha(long magic)
{
	__atomic_store_n(&in_alpha, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&lock);
	while (!stop_alpha)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	__atomic_store_n(&in_alpha, 0, __ATOMIC_RELEASE);
	return magic + 1;
}

NOINL void *zt_bt_alpha_start(void *arg)
{
	(void)arg;
	__atomic_store_n(&tid_alpha, zt_gettid(), __ATOMIC_RELEASE);
	pthread_setname_np(pthread_self(), "bt-alpha");
	return (void *)zt_bt_waiting_in_alpha(0xa0);
}

NOINL long zt_bt_waiting_in_beta(long magic)
{
	__atomic_store_n(&in_beta, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_beta, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		__atomic_add_fetch(&beta_loops, 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&in_beta, 0, __ATOMIC_RELEASE);
	return magic + 1;
}

NOINL long zt_bt_beta_outer(long magic)
{
	return zt_bt_waiting_in_beta(magic + 1) + 1;
}

NOINL void *zt_bt_beta_start(void *arg)
{
	(void)arg;
	__atomic_store_n(&tid_beta, zt_gettid(), __ATOMIC_RELEASE);
	pthread_setname_np(pthread_self(), "bt-beta");
	return (void *)zt_bt_beta_outer(0xb0);
}

NOINL long zt_bt_main_loop(long magic)
{
	while (!zt_stop) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return magic + 1;
}

static void wait_started(pid_t *tid, int *flag, const char *who)
{
	int64_t end = zt_now_ns() + 5000000000LL;

	while (!__atomic_load_n(tid, __ATOMIC_ACQUIRE) || !__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (zt_now_ns() > end)
			zt_fail("thread %s did not start within 5 s", who);
		zt_sleep_ms(1);
	}
}

int main(void)
{
	pthread_t alpha, beta;
	void *ra = NULL, *rb = NULL;
	char buf[128];
	long last = 0, r;
	int fd, n;

	zt_thr_create(&alpha, zt_bt_alpha_start, NULL);
	zt_thr_create(&beta, zt_bt_beta_start, NULL);
	wait_started(&tid_alpha, &in_alpha, "alpha");
	wait_started(&tid_beta, &in_beta, "beta");
	if (!zt_thr_wait_in_syscall(tid_alpha, SYS_futex, -3, 3000, &last))
		zt_fail("alpha (tid %d) is not blocked in futex (syscall %ld)", (int)tid_alpha, last);
	if (!zt_thr_wait_in_syscall(tid_beta, SYS_clock_nanosleep, SYS_nanosleep, 3000, &last))
		zt_fail("beta (tid %d) is not sleeping (syscall %ld)", (int)tid_beta, last);

	n = snprintf(buf, sizeof(buf), "main %d\nalpha %d\nbeta %d\n", (int)getpid(), (int)tid_alpha, (int)tid_beta);
	fd = open("bt.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || zt_write_all(fd, buf, (size_t)n) != 0 || close(fd) != 0)
		zt_fail("cannot write bt.txt: %s", strerror(errno));

	zt_ready();
	r = zt_bt_main_loop(0xc0);

	if (r != 0xc1)
		zt_fail("zt_bt_main_loop returned %#lx", r);
	if (!__atomic_load_n(&in_alpha, __ATOMIC_ACQUIRE) || !__atomic_load_n(&in_beta, __ATOMIC_ACQUIRE))
		zt_fail("after SIGTERM: alpha %s, beta %s in their functions", in_alpha ? "still" : "NOT",
			in_beta ? "still" : "NOT");
	last = __atomic_load_n(&beta_loops, __ATOMIC_ACQUIRE);
	for (int i = 0; i < 500 && __atomic_load_n(&beta_loops, __ATOMIC_ACQUIRE) < last + 2; i++)
		zt_sleep_ms(10);
	if (__atomic_load_n(&beta_loops, __ATOMIC_ACQUIRE) < last + 2)
		zt_fail("beta does not loop after SIGTERM");
	pthread_mutex_lock(&lock);
	stop_alpha = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	__atomic_store_n(&stop_beta, 1, __ATOMIC_RELEASE);
	zt_thr_join(alpha, &ra);
	zt_thr_join(beta, &rb);
	if (ra != (void *)0xa1 || rb != (void *)0xb3)
		zt_fail("alpha returned %p (expected 0xa1), beta %p (expected 0xb3)", ra, rb);
	zt_pass();
}
