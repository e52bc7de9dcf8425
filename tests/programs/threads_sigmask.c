/* threads_sigmask.c - per-thread signal masks and thread-directed pending signals.
 *
 * Every thread has its own, distinct blocked mask:
 *   main {SIGWINCH, SIGRTMIN+7}
 *   T0   {SIGTERM, SIGUSR1}                        SIGUSR1 sent with pthread_kill(T0): pending on T0
 *   T1   {SIGTERM, SIGUSR2, SIGRTMIN+3}            SIGRTMIN+3 pthread_sigqueue(T1, value 777): pending on T1
 *   T2   {SIGTERM, SIGWINCH, SIGRTMIN+5, SIGRTMAX}  nothing pending
 * SIGUSR1 and SIGRTMIN+3 have handlers that record the gettid() they run in and the siginfo.
 * Before READY and again after SIGTERM (after the restore): each thread's own mask
 * (pthread_sigmask in the thread, and SigBlk of /proc/self/task/TID/status) is as set,
 * SigPnd of T0 is exactly {SIGUSR1}, of T1 exactly {SIGRTMIN+3}, of T2 and main empty,
 * the shared pending set (ShdPnd) empty, and no handler has run. Then T0 unblocks SIGUSR1:
 * the handler must run once, in T0, with si_code SI_TKILL from this pid; then T1 unblocks
 * SIGRTMIN+3: once, in T1, SI_QUEUE, value 777. After each step the other threads' masks
 * must be unchanged and nothing else pending.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define NW 3

struct worker {
	pthread_t thread;
	int idx;
	pid_t tid;
	unsigned long long mask; /* what the thread blocks */
	unsigned long long pend; /* what must be pending on it until its turn */
	int sig;                 /* the pending signal it unblocks in its turn, 0 if none */
	int turn;                /* set by main: unblock now */
	int done;                /* set by the thread after its turn */
	long loops;
} __attribute__((aligned(64)));

static struct worker w[NW];
static unsigned long long main_mask;
static int stop_workers;

static volatile pid_t usr1_tid, rt_tid;
static volatile int usr1_count, rt_count, usr1_code, rt_code, rt_value;
static volatile pid_t usr1_pid;

static void usr1_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	usr1_tid = zt_gettid();
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	usr1_count++;
}

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	rt_tid = zt_gettid();
	rt_code = si->si_code;
	rt_value = si->si_value.sival_int;
	rt_count++;
}

static void set_of(unsigned long long bits, sigset_t *s)
{
	sigemptyset(s);
	for (int i = 1; i <= 64; i++)
		if (bits & ZT_SIGBIT(i))
			sigaddset(s, i);
}

static unsigned long long own_mask(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return zt_thr_mask_bits(&cur);
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	sigset_t s;

	set_of(me->mask, &s);
	if (pthread_sigmask(SIG_SETMASK, &s, NULL) != 0)
		zt_thr_error("T%d: pthread_sigmask failed", me->idx);
	__atomic_store_n(&me->tid, zt_gettid(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		unsigned long long m = own_mask();

		if (m != me->mask && !__atomic_load_n(&me->done, __ATOMIC_ACQUIRE)) {
			zt_thr_error("T%d: own mask is %#llx, set to %#llx", me->idx, m, me->mask);
			return NULL;
		}
		if (__atomic_load_n(&me->turn, __ATOMIC_ACQUIRE) && !me->done) {
			sigset_t pend, one;
			sigpending(&pend);
			if (zt_thr_mask_bits(&pend) != me->pend) {
				zt_thr_error("T%d: sigpending() in the thread is %#llx, expected %#llx", me->idx,
					     zt_thr_mask_bits(&pend), me->pend);
				return NULL;
			}
			sigemptyset(&one);
			sigaddset(&one, me->sig);
			pthread_sigmask(SIG_UNBLOCK, &one, NULL); /* the handler runs here, in this thread */
			__atomic_store_n(&me->done, 1, __ATOMIC_RELEASE);
		}
		__atomic_add_fetch(&me->loops, 1, __ATOMIC_RELEASE);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* every thread's SigBlk/SigPnd from /proc, ShdPnd empty; `after` = which workers had their turn */
static void check_all(const char *when, int after)
{
	pid_t me = getpid();
	unsigned long long v;

	if (zt_thr_status_sigmask(me, "SigBlk", &v) || v != main_mask)
		zt_fail("%s: main SigBlk %#llx, expected %#llx", when, v, main_mask);
	if (own_mask() != main_mask)
		zt_fail("%s: main's own mask %#llx, expected %#llx", when, own_mask(), main_mask);
	if (zt_thr_status_sigmask(me, "SigPnd", &v) || v != 0)
		zt_fail("%s: main SigPnd %#llx, expected 0", when, v);
	if (zt_thr_status_sigmask(me, "ShdPnd", &v) || v != 0)
		zt_fail("%s: shared pending (ShdPnd) %#llx, expected 0", when, v);
	for (int i = 0; i < NW; i++) {
		unsigned long long want_blk = w[i].mask, want_pnd = w[i].pend;
		if (i < after) {
			want_blk &= ~ZT_SIGBIT(w[i].sig);
			want_pnd = 0;
		}
		if (zt_thr_status_sigmask(w[i].tid, "SigBlk", &v) || v != want_blk)
			zt_fail("%s: T%d (tid %d) SigBlk %#llx, expected %#llx", when, i, (int)w[i].tid, v, want_blk);
		if (zt_thr_status_sigmask(w[i].tid, "SigPnd", &v) || v != want_pnd)
			zt_fail("%s: T%d (tid %d) SigPnd %#llx, expected %#llx", when, i, (int)w[i].tid, v, want_pnd);
	}
}

static void take_turn(int i)
{
	int64_t end = zt_now_ns() + 5000000000LL;

	__atomic_store_n(&w[i].turn, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE)) {
		zt_thr_check_errors();
		if (zt_now_ns() > end)
			zt_fail("T%d did not take its turn within 5 s", i);
		zt_sleep_ms(1);
	}
}

int main(void)
{
	struct sigaction sa;
	sigset_t s;
	long at_term[NW];
	int64_t end;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = usr1_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		zt_fail("sigaction(SIGUSR1)");
	sa.sa_sigaction = rt_handler;
	if (sigaction(SIGRTMIN + 3, &sa, NULL) != 0)
		zt_fail("sigaction(SIGRTMIN+3)");

	main_mask = ZT_SIGBIT(SIGWINCH) | ZT_SIGBIT(SIGRTMIN + 7);
	set_of(main_mask, &s);
	if (pthread_sigmask(SIG_SETMASK, &s, NULL) != 0)
		zt_fail("pthread_sigmask(main)");

	w[0].mask = ZT_SIGBIT(SIGTERM) | ZT_SIGBIT(SIGUSR1);
	w[0].sig = SIGUSR1;
	w[0].pend = ZT_SIGBIT(SIGUSR1);
	w[1].mask = ZT_SIGBIT(SIGTERM) | ZT_SIGBIT(SIGUSR2) | ZT_SIGBIT(SIGRTMIN + 3);
	w[1].sig = SIGRTMIN + 3;
	w[1].pend = ZT_SIGBIT(SIGRTMIN + 3);
	w[2].mask = ZT_SIGBIT(SIGTERM) | ZT_SIGBIT(SIGWINCH) | ZT_SIGBIT(SIGRTMIN + 5) | ZT_SIGBIT(SIGRTMAX);
	w[2].sig = 0;
	w[2].pend = 0;
	for (int i = 0; i < NW; i++) {
		w[i].idx = i;
		zt_thr_create(&w[i].thread, worker_main, &w[i]);
	}
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < NW; i++)
		while (__atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE) < 2) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("T%d did not start within 5 s", i);
			zt_sleep_ms(1);
		}

	/* thread-directed, blocked: stays pending on that one thread */
	if (pthread_kill(w[0].thread, SIGUSR1) != 0)
		zt_fail("pthread_kill(T0, SIGUSR1)");
	if (pthread_sigqueue(w[1].thread, SIGRTMIN + 3, (union sigval){ .sival_int = 777 }) != 0)
		zt_fail("pthread_sigqueue(T1, SIGRTMIN+3)");
	check_all("before READY", 0);
	if (usr1_count || rt_count)
		zt_fail("a handler ran before READY: SIGUSR1 %d, SIGRTMIN+3 %d", usr1_count, rt_count);
	zt_thr_check_errors();

	zt_ready();
	zt_wait_stop();

	/* after SIGTERM (after the restore) */
	zt_thr_check_errors();
	check_all("after SIGTERM", 0);
	if (usr1_count || rt_count)
		zt_fail("a handler ran before its thread unblocked the signal: SIGUSR1 %d (in tid %d), SIGRTMIN+3 %d "
			"(in tid %d)", usr1_count, (int)usr1_tid, rt_count, (int)rt_tid);
	for (int i = 0; i < NW; i++)
		at_term[i] = __atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE);
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < NW; i++)
		while (__atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE) < at_term[i] + 2) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("T%d made no progress within 5 s after SIGTERM", i);
			zt_sleep_ms(1);
		}

	take_turn(0);
	if (usr1_count != 1 || usr1_tid != w[0].tid)
		zt_fail("SIGUSR1 unblocked in T0 (tid %d): handler ran %d times, last in tid %d", (int)w[0].tid,
			usr1_count, (int)usr1_tid);
	if (usr1_code != SI_TKILL || usr1_pid != getpid())
		zt_fail("SIGUSR1 siginfo: si_code %d si_pid %d, expected SI_TKILL (%d) from %d", usr1_code,
			(int)usr1_pid, SI_TKILL, (int)getpid());
	if (rt_count != 0)
		zt_fail("SIGRTMIN+3 handler ran (in tid %d) before T1 unblocked it", (int)rt_tid);
	check_all("after T0 unblocked SIGUSR1", 1);

	take_turn(1);
	if (rt_count != 1 || rt_tid != w[1].tid)
		zt_fail("SIGRTMIN+3 unblocked in T1 (tid %d): handler ran %d times, last in tid %d", (int)w[1].tid,
			rt_count, (int)rt_tid);
	if (rt_code != SI_QUEUE || rt_value != 777)
		zt_fail("SIGRTMIN+3 siginfo: si_code %d value %d, expected SI_QUEUE (%d) 777", rt_code, rt_value,
			SI_QUEUE);
	check_all("after T1 unblocked SIGRTMIN+3", 2);
	if (usr1_count != 1)
		zt_fail("SIGUSR1 handler ran %d times in total", usr1_count);

	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NW; i++)
		zt_thr_join(w[i].thread, NULL);
	zt_thr_check_errors();
	zt_pass();
}
