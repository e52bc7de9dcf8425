/* itimer_pending.c - an interval ITIMER_REAL that has expired but whose SIGALRM is not
 * taken yet.
 *
 * The kernel re-arms an interval ITIMER_REAL only when SIGALRM is dequeued; until then
 * getitimer() reads a remaining time of zero with a non-zero interval. Here SIGALRM is
 * blocked before the first expiry, so that state holds (deterministically) at the dump.
 * After SIGTERM: the interval is unchanged, SIGALRM is still pending, and once unblocked
 * the timer keeps firing (a dump that restored the zero value as is disarmed it: one
 * SIGALRM, then silence).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

int main(void)
{
	const struct itimerval set = { .it_interval = { 0, 20000 }, .it_value = { 0, 1000 } };
	struct itimerval now;
	struct sigaction sa;
	sigset_t alrm, pending;
	int64_t deadline;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		zt_fail("sigaction: %s", strerror(errno));
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	if (sigprocmask(SIG_BLOCK, &alrm, NULL) != 0)
		zt_fail("sigprocmask: %s", strerror(errno));
	if (setitimer(ITIMER_REAL, &set, NULL) != 0)
		zt_fail("setitimer: %s", strerror(errno));
	/* wait for the first expiry: SIGALRM pending, the timer then reads zero */
	deadline = zt_now_ns() + 10LL * 1000000000;
	for (;;) {
		if (sigpending(&pending) != 0)
			zt_fail("sigpending: %s", strerror(errno));
		if (sigismember(&pending, SIGALRM))
			break;
		if (zt_now_ns() > deadline)
			zt_fail("SIGALRM not pending 10 s after a 1 ms timer");
		zt_sleep_ms(1);
	}
	if (getitimer(ITIMER_REAL, &now) != 0)
		zt_fail("getitimer: %s", strerror(errno));
	if (now.it_value.tv_sec || now.it_value.tv_usec)
		zt_fail("expired timer reads %ld.%06ld s remaining, expected 0 (the kernel changed?)",
			(long)now.it_value.tv_sec, (long)now.it_value.tv_usec);

	zt_ready();
	zt_wait_stop();

	if (getitimer(ITIMER_REAL, &now) != 0)
		zt_fail("getitimer: %s", strerror(errno));
	if (now.it_interval.tv_sec != set.it_interval.tv_sec || now.it_interval.tv_usec != set.it_interval.tv_usec)
		zt_fail("interval is %ld.%06ld s, expected %ld.%06ld s", (long)now.it_interval.tv_sec,
			(long)now.it_interval.tv_usec, (long)set.it_interval.tv_sec, (long)set.it_interval.tv_usec);
	if (sigpending(&pending) != 0 || !sigismember(&pending, SIGALRM))
		zt_fail("SIGALRM is no longer pending");
	if (alarms != 0)
		zt_fail("SIGALRM ran %d times while blocked", (int)alarms);
	if (sigprocmask(SIG_UNBLOCK, &alrm, NULL) != 0)
		zt_fail("sigprocmask: %s", strerror(errno));
	/* every 20 ms from now on; a disarmed timer gives exactly one */
	deadline = zt_now_ns() + 20LL * 1000000000;
	while (alarms < 5 && zt_now_ns() < deadline)
		zt_sleep_ms(5);
	if (alarms < 5)
		zt_fail("only %d SIGALRM in 20 s after unblocking a 20 ms interval timer: disarmed", (int)alarms);
	zt_pass();
}
