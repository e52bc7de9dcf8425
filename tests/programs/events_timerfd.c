/* events_timerfd.c - timerfds keep their clock, time left, interval, mode and unread expirations.
 *
 * Before READY:
 *   - P: CLOCK_MONOTONIC, first expiry in 30 s, then every 20 s;
 *   - W: CLOCK_REALTIME, TFD_TIMER_ABSTIME, one shot at (wall clock at setup) + 3 s;
 *   - U: CLOCK_BOOTTIME, one shot after 10 ms, expired and not read (1 unread expiration);
 *   - R: CLOCK_MONOTONIC, every 10 ms, expired several times and not read;
 *   - D: disarmed;
 *   - C: CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, in a day.
 * Their time left is read just before READY.
 * After SIGTERM: P's interval is 20 s and its time left at most what it was (and not 10 s
 * less: the dump and restore take far less); W reads 1 expiration, and not before its wall
 * time; U reads 1 at once; R reads at least 1 at once and keeps expiring; D is still
 * disarmed; C still has a day left (give or take a minute) and is absolute; P2 is still the
 * same description as P (a status flag set through one shows through the other).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ns_of(ts);
}

static int make(clockid_t clock, int flags, int64_t value_ns, int64_t interval_ns)
{
	struct itimerspec its = {
		.it_interval = { interval_ns / 1000000000, interval_ns % 1000000000 },
		.it_value = { value_ns / 1000000000, value_ns % 1000000000 },
	};
	int fd = timerfd_create(clock, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		zt_fail("timerfd_create(%d): %s", (int)clock, strerror(errno));
	if (timerfd_settime(fd, flags, &its, NULL) != 0)
		zt_fail("timerfd_settime: %s", strerror(errno));
	return fd;
}

static struct itimerspec get(int fd, const char *what)
{
	struct itimerspec its;
	if (timerfd_gettime(fd, &its) != 0)
		zt_fail("timerfd_gettime %s: %s", what, strerror(errno));
	return its;
}

/* Expirations read at once (0 if none). */
static uint64_t ticks(int fd, const char *what)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v)) {
		if (errno == EAGAIN)
			return 0;
		zt_fail("read %s: %s", what, strerror(errno));
	}
	return v;
}

int main(void)
{
	const int64_t s = 1000000000;
	int64_t w_at = wall_ns() + 3 * s, c_at = wall_ns() + 86400 * s;
	int p = make(CLOCK_MONOTONIC, 0, 30 * s, 20 * s);
	int w = make(CLOCK_REALTIME, TFD_TIMER_ABSTIME, w_at, 0);
	int u = make(CLOCK_BOOTTIME, 0, 10000000, 0);
	int r = make(CLOCK_MONOTONIC, 0, 10000000, 10000000);
	int d = make(CLOCK_MONOTONIC, 0, 0, 0);
	int c = make(CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, c_at, 0);
	int64_t p_left;
	int p2 = dup(p);

	if (p2 < 0)
		zt_fail("dup: %s", strerror(errno));
	zt_sleep_ms(60);
	p_left = ns_of(get(p, "P").it_value);
	zt_ready();
	zt_wait_stop();

	{
		struct itimerspec now = get(p, "P");
		if (ns_of(now.it_interval) != 20 * s)
			zt_fail("P's interval is %lld ns, expected 20 s", (long long)ns_of(now.it_interval));
		if (ns_of(now.it_value) > p_left || ns_of(now.it_value) < p_left - 10 * s)
			zt_fail("P has %lld ns left, %lld before the dump", (long long)ns_of(now.it_value),
				(long long)p_left);
		if (ticks(p, "P") != 0)
			zt_fail("P expired early");
	}
	if (fcntl(p2, F_SETFL, 0) != 0 || (fcntl(p, F_GETFL) & O_NONBLOCK) || fcntl(p2, F_SETFL, O_NONBLOCK) != 0)
		zt_fail("P and its dup P2 are two descriptions after restore");
	{
		uint64_t n = ticks(u, "U");
		if (n != 1)
			zt_fail("U reads %llu expirations, expected its 1 unread one", (unsigned long long)n);
		n = ticks(r, "R");
		if (n < 1)
			zt_fail("R lost its unread expirations");
		zt_sleep_ms(50);
		if (ticks(r, "R") < 1)
			zt_fail("R stopped expiring");
	}
	{
		struct itimerspec now = get(d, "D");
		if (ns_of(now.it_value) || ns_of(now.it_interval))
			zt_fail("D is armed after restore");
	}
	{
		int64_t left = ns_of(get(c, "C").it_value), want = c_at - wall_ns();
		if (left > want + 60 * s || left < want - 60 * s)
			zt_fail("C has %lld s left, expected about %lld s", (long long)(left / s), (long long)(want / s));
	}
	{
		/* wait for W (blocking read through poll-like loop) */
		uint64_t n = 0;
		int64_t end = zt_now_ns() + 10 * s;
		while ((n = ticks(w, "W")) == 0 && zt_now_ns() < end)
			zt_sleep_ms(10);
		if (n != 1)
			zt_fail("W did not expire within 10 s of the check (read %llu)", (unsigned long long)n);
		if (wall_ns() < w_at)
			zt_fail("W expired %lld ms before its wall time", (long long)((w_at - wall_ns()) / 1000000));
	}
	zt_pass();
}
