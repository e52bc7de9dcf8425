/* posix_timers.c - POSIX timers (timer_create) keep their ids, clocks, notification and times.
 *
 * Before READY, in id order:
 *   T0: SIGEV_SIGNAL SIGUSR1 with value 0x1234, CLOCK_MONOTONIC, every 100 ms;
 *   T1: created and deleted again (its id must stay free);
 *   T2: SIGEV_NONE, CLOCK_MONOTONIC, one shot in 50 s;
 *   T3: SIGEV_THREAD_ID to the main thread, SIGUSR2, CLOCK_REALTIME, in 200 s then every 300 s;
 *   T4: SIGEV_THREAD (glibc's helper thread runs the callback) with value 77, every 50 ms;
 *   T5: SIGEV_NONE, CLOCK_PROCESS_CPUTIME_ID, in 1000 s of CPU time.
 * Their time left is read just before READY.
 * After SIGTERM: every id is there with its interval, and no more time left than before
 * (and not absurdly less); T1's id is still free (timer_gettime fails with EINVAL); T0
 * delivers 3 more SIGUSR1 within 2 s carrying 0x1234 and its id; T4's callback runs again
 * with 77; T3 has not fired.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static volatile sig_atomic_t usr1_count, usr1_bad, usr2_count, cb_count, cb_bad;
static timer_t ids[6];

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != 0x1234 || si->si_timerid != (int)(intptr_t)ids[0])
		usr1_bad = 1;
	usr1_count++;
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_count++;
}

static void callback(union sigval v)
{
	if (v.sival_int != 77)
		cb_bad = 1;
	cb_count++;
}

static int64_t ns(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void arm(timer_t id, int64_t value_ns, int64_t interval_ns)
{
	struct itimerspec its = {
		.it_interval = { interval_ns / 1000000000, interval_ns % 1000000000 },
		.it_value = { value_ns / 1000000000, value_ns % 1000000000 },
	};
	if (timer_settime(id, 0, &its, NULL) != 0)
		zt_fail("timer_settime: %s", strerror(errno));
}

static void make(int i, clockid_t clock, struct sigevent *sev)
{
	if (timer_create(clock, sev, &ids[i]) != 0)
		zt_fail("timer_create T%d: %s", i, strerror(errno));
}

int main(void)
{
	const int64_t s = 1000000000;
	const int64_t intervals[6] = { s / 10, 0, 0, 300 * s, s / 20, 0 };
	struct sigaction sa;
	struct sigevent sev;
	struct itimerspec before[6], now;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_value.sival_int = 0x1234;
	make(0, CLOCK_MONOTONIC, &sev);
	make(1, CLOCK_MONOTONIC, &sev);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	make(2, CLOCK_MONOTONIC, &sev);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGUSR2;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	make(3, CLOCK_REALTIME, &sev);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = callback;
	sev.sigev_value.sival_int = 77;
	make(4, CLOCK_MONOTONIC, &sev);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	make(5, CLOCK_PROCESS_CPUTIME_ID, &sev);
	if (timer_delete(ids[1]) != 0)
		zt_fail("timer_delete: %s", strerror(errno));
	arm(ids[0], s / 10, intervals[0]);
	arm(ids[2], 50 * s, 0);
	arm(ids[3], 200 * s, intervals[3]);
	arm(ids[4], s / 20, intervals[4]);
	arm(ids[5], 1000 * s, 0);
	zt_sleep_ms(150);
	for (int i = 0; i < 6; i++)
		if (i != 1 && timer_gettime(ids[i], &before[i]) != 0)
			zt_fail("timer_gettime T%d: %s", i, strerror(errno));

	zt_ready();
	zt_wait_stop();

	for (int i = 0; i < 6; i++) {
		if (i == 1)
			continue;
		if (timer_gettime(ids[i], &now) != 0)
			zt_fail("T%d (id %d) is gone: %s", i, (int)(intptr_t)ids[i], strerror(errno));
		if (ns(now.it_interval) != intervals[i])
			zt_fail("T%d's interval is %lld ns, expected %lld", i, (long long)ns(now.it_interval),
				(long long)intervals[i]);
		if (i == 2 || i == 3 || i == 5) {
			if (ns(now.it_value) <= 0 || ns(now.it_value) > ns(before[i].it_value))
				zt_fail("T%d has %lld ns left, %lld before the dump", i, (long long)ns(now.it_value),
					(long long)ns(before[i].it_value));
			if (ns(now.it_value) < ns(before[i].it_value) - 30 * s)
				zt_fail("T%d lost more than 30 s: %lld ns left, %lld before", i, (long long)ns(now.it_value),
					(long long)ns(before[i].it_value));
		}
	}
	if (timer_gettime(ids[1], &now) != -1 || errno != EINVAL)
		zt_fail("the deleted timer's id %d is in use after restore", (int)(intptr_t)ids[1]);
	{
		int u0 = usr1_count, c0 = cb_count;
		int64_t end = zt_now_ns() + 2 * s;
		while ((usr1_count < u0 + 3 || cb_count < c0 + 3) && zt_now_ns() < end)
			zt_sleep_ms(10);
		if (usr1_count < u0 + 3)
			zt_fail("T0 delivered %d SIGUSR1 in 2 s, expected at least 3", usr1_count - u0);
		if (cb_count < c0 + 3)
			zt_fail("T4's callback ran %d times in 2 s, expected at least 3", cb_count - c0);
	}
	if (usr1_bad)
		zt_fail("a SIGUSR1 did not carry T0's value 0x1234 and id");
	if (cb_bad)
		zt_fail("T4's callback got another value than 77");
	if (usr2_count)
		zt_fail("T3 fired (%d times) long before its time", usr2_count);
	zt_pass();
}
