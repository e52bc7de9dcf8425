/* timers.c - interval timers.
 *
 * Before READY: alarm(4) with a counting SIGALRM handler, ITIMER_VIRTUAL
 * (value 500 s, interval 1000 s) and ITIMER_PROF (value 700.125 s, interval
 * 2000.25 s), each with a handler that must never run.
 * After SIGTERM: ITIMER_VIRTUAL and ITIMER_PROF are still armed with their
 * intervals and a remaining value no larger than before the dump (and not
 * absurdly smaller); ITIMER_REAL is one-shot; SIGALRM has fired exactly once,
 * or fires within 5 more seconds, and not before 4 s after alarm() was called.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alrm_count, vt_count, prof_count;
static volatile int64_t alrm_first_ns;

static void alrm_handler(int sig)
{
	(void)sig;
	if (alrm_count == 0)
		alrm_first_ns = zt_now_ns();
	alrm_count++;
}

static void vt_handler(int sig)
{
	(void)sig;
	vt_count++;
}

static void prof_handler(int sig)
{
	(void)sig;
	prof_count++;
}

static void set_handler(int sig, void (*h)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		zt_fail("sigaction(%d): %s", sig, strerror(errno));
}

static int64_t tv_us(struct timeval tv)
{
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void check_itimer(const char *name, int which, const struct itimerval *set, const struct itimerval *before)
{
	struct itimerval now;

	if (getitimer(which, &now) != 0)
		zt_fail("getitimer(%s): %s", name, strerror(errno));
	if (tv_us(now.it_interval) != tv_us(set->it_interval))
		zt_fail("%s interval is %lld us, expected %lld us", name, (long long)tv_us(now.it_interval),
			(long long)tv_us(set->it_interval));
	if (tv_us(now.it_value) <= 0)
		zt_fail("%s is disarmed", name);
	if (tv_us(now.it_value) > tv_us(before->it_value))
		zt_fail("%s remaining %lld us is more than %lld us before the dump", name,
			(long long)tv_us(now.it_value), (long long)tv_us(before->it_value));
	/* this program burns far less than 30 s of CPU */
	if (tv_us(before->it_value) - tv_us(now.it_value) > 30LL * 1000000)
		zt_fail("%s remaining %lld us: lost more than 30 s (before the dump: %lld us)", name,
			(long long)tv_us(now.it_value), (long long)tv_us(before->it_value));
}

int main(void)
{
	const struct itimerval vset = { .it_interval = { 1000, 0 }, .it_value = { 500, 0 } };
	const struct itimerval pset = { .it_interval = { 2000, 250000 }, .it_value = { 700, 125000 } };
	struct itimerval vbefore, pbefore, real;
	int64_t armed_ns;

	set_handler(SIGALRM, alrm_handler);
	set_handler(SIGVTALRM, vt_handler);
	set_handler(SIGPROF, prof_handler);

	if (setitimer(ITIMER_VIRTUAL, &vset, NULL) != 0 || setitimer(ITIMER_PROF, &pset, NULL) != 0)
		zt_fail("setitimer: %s", strerror(errno));
	armed_ns = zt_now_ns();
	alarm(4);
	if (getitimer(ITIMER_VIRTUAL, &vbefore) != 0 || getitimer(ITIMER_PROF, &pbefore) != 0)
		zt_fail("getitimer: %s", strerror(errno));
	if (tv_us(vbefore.it_value) <= 0 || tv_us(pbefore.it_value) <= 0)
		zt_fail("timers not armed by setitimer");

	zt_ready();
	zt_wait_stop();

	check_itimer("ITIMER_VIRTUAL", ITIMER_VIRTUAL, &vset, &vbefore);
	check_itimer("ITIMER_PROF", ITIMER_PROF, &pset, &pbefore);

	if (getitimer(ITIMER_REAL, &real) != 0)
		zt_fail("getitimer(ITIMER_REAL): %s", strerror(errno));
	if (tv_us(real.it_interval) != 0)
		zt_fail("ITIMER_REAL has an interval of %lld us; alarm() is one-shot", (long long)tv_us(real.it_interval));
	if (alrm_count == 0) {
		if (tv_us(real.it_value) <= 0)
			zt_fail("SIGALRM has not fired and ITIMER_REAL is disarmed");
		if (tv_us(real.it_value) > 4000000)
			zt_fail("ITIMER_REAL remaining %lld us > the 4 s set", (long long)tv_us(real.it_value));
		int64_t deadline = zt_now_ns() + 5000000000LL;
		while (alrm_count == 0 && zt_now_ns() < deadline)
			zt_sleep_ms(10);
	}
	if (alrm_count != 1)
		zt_fail("SIGALRM fired %d times, expected once", (int)alrm_count);
	if (alrm_first_ns - armed_ns < 3900LL * 1000000)
		zt_fail("SIGALRM fired %lld ms after alarm(4): too early",
			(long long)((alrm_first_ns - armed_ns) / 1000000));
	if (getitimer(ITIMER_REAL, &real) != 0 || tv_us(real.it_value) != 0)
		zt_fail("ITIMER_REAL still armed after the alarm fired");
	if (vt_count || prof_count)
		zt_fail("SIGVTALRM/SIGPROF fired (%d/%d) but the timers are far from expiring", (int)vt_count,
			(int)prof_count);
	zt_pass();
}
