/* threads_blocked.c - threads blocked in different system calls across the dump.
 *
 *   late      sem_wait() on a semaphore main posts after SIGTERM, then returns 0x1e1e;
 *   joiner    pthread_join(late): a futex wait on late's tid word, which the kernel clears
 *             and wakes (CLONE_CHILD_CLEARTID) when late exits;
 *   futexer   raw syscall(SYS_futex, &word, FUTEX_WAIT, 0) until main sets word = 1 and
 *             FUTEX_WAKEs it after SIGTERM;
 *   sleeper   nanosleep(3 s), started just before READY: must return 0, not before 3 s
 *             of CLOCK_MONOTONIC have passed;
 *   sigwaiter sigwaitinfo({SIGUSR1}) (SIGUSR1 is blocked everywhere); main sigqueue()s
 *             SIGUSR1 with value 4242 after SIGTERM.
 * Before READY each thread is seen blocked in its system call (/proc/self/task/TID/syscall).
 * After SIGTERM (after the restore) late, joiner, futexer and sigwaiter must still be
 * blocked there (none woke early), then each is woken in turn and must report exactly
 * what woke it, within 5 s. EINTR (which Linux may return from sigwaitinfo after a stop)
 * is retried and only reported as information; from nanosleep it is a failure.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <linux/futex.h>
#include <semaphore.h>
#include <time.h>

#define SLEEP_S 3

static sem_t late_sem;
static int late_may_exit, late_done;
static int join_rc = -1, join_done;
static void *join_ret;
static int futex_word, futex_done, futex_eintr;
static int sleep_rc = -2, sleep_errno, sleep_done;
static int64_t sleep_t0, sleep_t1;
static siginfo_t sw_info;
static int sw_rc = -2, sw_errno, sw_done, sw_eintr;
static pid_t tid_late, tid_joiner, tid_futex, tid_sleeper, tid_sigwait;

static void *late_main(void *arg)
{
	(void)arg;
	__atomic_store_n(&tid_late, zt_gettid(), __ATOMIC_RELEASE);
	while (sem_wait(&late_sem) != 0) {
		if (errno != EINTR) {
			zt_thr_error("sem_wait: %s", strerror(errno));
			break;
		}
	}
	if (!__atomic_load_n(&late_may_exit, __ATOMIC_ACQUIRE))
		zt_thr_error("late thread woke up from sem_wait before main posted");
	__atomic_store_n(&late_done, 1, __ATOMIC_RELEASE);
	return (void *)0x1e1e;
}

static void *joiner_main(void *arg)
{
	pthread_t late = *(pthread_t *)arg;
	void *ret = NULL;
	int rc;

	__atomic_store_n(&tid_joiner, zt_gettid(), __ATOMIC_RELEASE);
	rc = pthread_join(late, &ret);
	join_ret = ret;
	join_rc = rc;
	__atomic_store_n(&join_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *futex_main(void *arg)
{
	(void)arg;
	__atomic_store_n(&tid_futex, zt_gettid(), __ATOMIC_RELEASE);
	while (__atomic_load_n(&futex_word, __ATOMIC_ACQUIRE) == 0) {
		long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, NULL, NULL, 0);
		if (r == 0 || errno == EAGAIN)
			continue; /* woken (or word already changed): loop re-checks the word */
		if (errno == EINTR) {
			futex_eintr++;
			continue;
		}
		zt_thr_error("futex(FUTEX_WAIT): %s", strerror(errno));
		break;
	}
	__atomic_store_n(&futex_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *sleeper_main(void *arg)
{
	struct timespec ts = { SLEEP_S, 0 };
	int rc;

	(void)arg;
	__atomic_store_n(&tid_sleeper, zt_gettid(), __ATOMIC_RELEASE);
	sleep_t0 = zt_now_ns();
	rc = nanosleep(&ts, NULL);
	sleep_errno = errno;
	sleep_t1 = zt_now_ns();
	sleep_rc = rc;
	__atomic_store_n(&sleep_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *sigwait_main(void *arg)
{
	sigset_t set;
	int rc;

	(void)arg;
	__atomic_store_n(&tid_sigwait, zt_gettid(), __ATOMIC_RELEASE);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while ((rc = sigwaitinfo(&set, &sw_info)) < 0 && errno == EINTR)
		sw_eintr++;
	sw_errno = errno;
	sw_rc = rc;
	__atomic_store_n(&sw_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static pid_t wait_tid(pid_t *p, const char *who)
{
	int64_t end = zt_now_ns() + 5000000000LL;
	pid_t t;

	while ((t = __atomic_load_n(p, __ATOMIC_ACQUIRE)) == 0) {
		if (zt_now_ns() > end)
			zt_fail("thread %s did not start within 5 s", who);
		zt_sleep_ms(1);
	}
	return t;
}

static void expect_blocked(pid_t tid, const char *who, long nr1, long nr2, const char *when)
{
	long last = 0;

	if (!zt_thr_wait_in_syscall(tid, nr1, nr2, 3000, &last))
		zt_fail("%s: thread %s (tid %d) is not blocked in system call %ld but %s %ld", when, who, (int)tid, nr1,
			last == -1 ? "running," : last == -2 ? "unreadable," : "in system call", last);
}

static void wait_flag(int *flag, const char *what)
{
	int64_t end = zt_now_ns() + 5000000000LL;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (zt_now_ns() > end)
			zt_fail("%s within 5 s after being woken", what);
		zt_sleep_ms(1);
	}
}

int main(void)
{
	pthread_t late, joiner, futexer, sleeper, sigwaiter;
	sigset_t usr1;

	if (sem_init(&late_sem, 0, 0) != 0)
		zt_fail("sem_init: %s", strerror(errno));
	/* SIGUSR1 blocked in every thread: only sigwaitinfo takes it */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &usr1, NULL) != 0)
		zt_fail("pthread_sigmask");

	zt_thr_create(&late, late_main, NULL);
	zt_thr_create(&joiner, joiner_main, &late);
	zt_thr_create(&futexer, futex_main, NULL);
	zt_thr_create(&sigwaiter, sigwait_main, NULL);
	wait_tid(&tid_late, "late");
	wait_tid(&tid_joiner, "joiner");
	wait_tid(&tid_futex, "futexer");
	wait_tid(&tid_sigwait, "sigwaiter");
	expect_blocked(tid_late, "late (sem_wait)", SYS_futex, -3, "before READY");
	expect_blocked(tid_joiner, "joiner (pthread_join)", SYS_futex, -3, "before READY");
	expect_blocked(tid_futex, "futexer (FUTEX_WAIT)", SYS_futex, -3, "before READY");
	expect_blocked(tid_sigwait, "sigwaiter (sigwaitinfo)", SYS_rt_sigtimedwait, -3, "before READY");
	/* last: the 3 s run from here */
	zt_thr_create(&sleeper, sleeper_main, NULL);
	wait_tid(&tid_sleeper, "sleeper");
	expect_blocked(tid_sleeper, "sleeper (nanosleep)", SYS_clock_nanosleep, SYS_nanosleep, "before READY");
	zt_thr_check_errors();

	zt_ready();
	zt_wait_stop();

	/* after SIGTERM (after the restore): nobody woke up early */
	zt_thr_check_errors();
	if (late_done || join_done || futex_done || sw_done)
		zt_fail("woke up before being woken: late %d joiner %d futexer %d sigwaiter %d", late_done, join_done,
			futex_done, sw_done);
	expect_blocked(tid_late, "late (sem_wait)", SYS_futex, -3, "after SIGTERM");
	expect_blocked(tid_joiner, "joiner (pthread_join)", SYS_futex, -3, "after SIGTERM");
	expect_blocked(tid_futex, "futexer (FUTEX_WAIT)", SYS_futex, -3, "after SIGTERM");
	expect_blocked(tid_sigwait, "sigwaiter (sigwaitinfo)", SYS_rt_sigtimedwait, -3, "after SIGTERM");

	/* late exits: joiner's pthread_join returns */
	__atomic_store_n(&late_may_exit, 1, __ATOMIC_RELEASE);
	if (sem_post(&late_sem) != 0)
		zt_fail("sem_post: %s", strerror(errno));
	wait_flag(&late_done, "the late thread did not return from sem_wait");
	wait_flag(&join_done, "pthread_join of the late thread (kernel clear-child-tid wake-up) did not return");
	if (join_rc != 0 || join_ret != (void *)0x1e1e)
		zt_fail("pthread_join returned %d with value %p, expected 0 and 0x1e1e", join_rc, join_ret);
	zt_thr_join(joiner, NULL);

	/* raw futex */
	__atomic_store_n(&futex_word, 1, __ATOMIC_RELEASE);
	if (syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
		zt_fail("FUTEX_WAKE: %s", strerror(errno));
	wait_flag(&futex_done, "the FUTEX_WAIT thread did not wake up");
	zt_thr_join(futexer, NULL);

	/* sigwaitinfo */
	if (sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 4242 }) != 0)
		zt_fail("sigqueue: %s", strerror(errno));
	wait_flag(&sw_done, "sigwaitinfo did not return");
	zt_thr_join(sigwaiter, NULL);
	if (sw_rc != SIGUSR1)
		zt_fail("sigwaitinfo returned %d (%s), expected SIGUSR1", sw_rc, sw_rc < 0 ? strerror(sw_errno) : "");
	if (sw_info.si_signo != SIGUSR1 || sw_info.si_code != SI_QUEUE || sw_info.si_pid != getpid() ||
	    sw_info.si_value.sival_int != 4242)
		zt_fail("sigwaitinfo siginfo: signo %d code %d pid %d value %d, expected %d SI_QUEUE %d 4242",
			sw_info.si_signo, sw_info.si_code, (int)sw_info.si_pid, sw_info.si_value.sival_int, SIGUSR1,
			(int)getpid());

	/* nanosleep: ran its full time, returned 0 */
	zt_thr_join(sleeper, NULL);
	if (sleep_rc != 0)
		zt_fail("nanosleep(%d s) returned %d (%s), expected 0", SLEEP_S, sleep_rc, strerror(sleep_errno));
	if (sleep_t1 - sleep_t0 < SLEEP_S * 1000000000LL)
		zt_fail("nanosleep(%d s) returned after only %.3f s", SLEEP_S, (double)(sleep_t1 - sleep_t0) / 1e9);

	zt_thr_check_errors();
	if (futex_eintr || sw_eintr)
		zt_info("EINTR retried: futex %d, sigwaitinfo %d", futex_eintr, sw_eintr);
	zt_info("nanosleep took %.3f s", (double)(sleep_t1 - sleep_t0) / 1e9);
	zt_pass();
}
