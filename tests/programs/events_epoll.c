/* events_epoll.c - an epoll set over eventfd, timerfd and signalfd, and epoll inside epoll.
 *
 * Before READY:
 *   - eventfd A (non-blocking) holds 7; eventfd S (EFD_SEMAPHORE) holds 3;
 *   - timerfd T on CLOCK_MONOTONIC fires every 50 ms (non-blocking);
 *   - signalfd G reads SIGUSR1 and SIGUSR2 (both blocked), and SIGUSR1 is pending;
 *   - epoll E watches A (EPOLLIN, data 0xA1), T (EPOLLIN|EPOLLET, 0x71), G (EPOLLIN, 0x51),
 *     S (EPOLLIN|EPOLLONESHOT, 0x5E: already reported once, so disarmed), and eventfd B
 *     registered under fd 40, a dup of B closed since (EPOLLIN, 0xB1);
 *   - epoll F watches E (EPOLLIN, 0xE1).
 * After SIGTERM: F reports E; E reports A, G and, within a second, T with their data, and
 * neither S (disarmed) nor B (empty); after writing B, E reports 0xB1; re-arming S with
 * EPOLL_CTL_MOD reports it; A reads 7, S reads 1 three times then EAGAIN; G reads SIGUSR1;
 * T's interval is 50 ms and it keeps expiring; every descriptor kept O_NONBLOCK and
 * FD_CLOEXEC.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define B_OLD_FD 40

static int a_fd, s_fd, b_fd, t_fd, g_fd, e_fd, f_fd;

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		zt_fail("epoll_ctl ADD fd %d: %s", fd, strerror(errno));
}

/* Bit per data value seen within `ms` milliseconds (0xA1 -> 1, 0x71 -> 2, 0x51 -> 4, 0x5E -> 8,
 * 0xB1 -> 16, 0xE1 -> 32, other -> 64). */
static unsigned seen(int ep, int ms)
{
	struct epoll_event evs[16];
	unsigned bits = 0;
	int n = epoll_wait(ep, evs, 16, ms);

	if (n < 0)
		zt_fail("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		switch (evs[i].data.u64) {
		case 0xA1: bits |= 1; break;
		case 0x71: bits |= 2; break;
		case 0x51: bits |= 4; break;
		case 0x5E: bits |= 8; break;
		case 0xB1: bits |= 16; break;
		case 0xE1: bits |= 32; break;
		default: bits |= 64; break;
		}
	}
	return bits;
}

static uint64_t read_count(int fd, const char *what)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		zt_fail("read %s: %s", what, strerror(errno));
	return v;
}

static void check_flags(int fd, const char *what)
{
	if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
		zt_fail("%s lost O_NONBLOCK", what);
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
		zt_fail("%s lost FD_CLOEXEC", what);
}

int main(void)
{
	sigset_t mask;
	struct itimerspec its = { .it_interval = { 0, 50000000 }, .it_value = { 0, 50000000 } };
	uint64_t one = 1;
	unsigned bits;
	int dup40;

	a_fd = eventfd(7, EFD_NONBLOCK | EFD_CLOEXEC);
	s_fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	b_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
		zt_fail("sigprocmask: %s", strerror(errno));
	g_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	e_fd = epoll_create1(EPOLL_CLOEXEC);
	f_fd = epoll_create1(EPOLL_CLOEXEC);
	if (a_fd < 0 || s_fd < 0 || b_fd < 0 || t_fd < 0 || g_fd < 0 || e_fd < 0 || f_fd < 0)
		zt_fail("creating the descriptors: %s", strerror(errno));
	if (timerfd_settime(t_fd, 0, &its, NULL) != 0)
		zt_fail("timerfd_settime: %s", strerror(errno));
	add(e_fd, a_fd, EPOLLIN, 0xA1);
	add(e_fd, t_fd, EPOLLIN | EPOLLET, 0x71);
	add(e_fd, g_fd, EPOLLIN, 0x51);
	add(e_fd, s_fd, EPOLLIN | EPOLLONESHOT, 0x5E);
	dup40 = dup2(b_fd, B_OLD_FD);
	if (dup40 != B_OLD_FD)
		zt_fail("dup2: %s", strerror(errno));
	add(e_fd, B_OLD_FD, EPOLLIN, 0xB1);
	close(B_OLD_FD);
	add(f_fd, e_fd, EPOLLIN, 0xE1);
	/* S reports once and is disarmed from then on */
	bits = seen(e_fd, 0);
	if (!(bits & 8))
		zt_fail("setup: the one-shot target was not reported (bits %#x)", bits);
	if (seen(e_fd, 0) & 8)
		zt_fail("setup: the one-shot target was reported twice");
	if (kill(getpid(), SIGUSR1) != 0)
		zt_fail("kill: %s", strerror(errno));

	zt_ready();
	zt_wait_stop();

	check_flags(a_fd, "eventfd A");
	check_flags(s_fd, "eventfd S");
	check_flags(t_fd, "timerfd");
	check_flags(g_fd, "signalfd");
	if (!(fcntl(e_fd, F_GETFD) & FD_CLOEXEC))
		zt_fail("epoll lost FD_CLOEXEC");
	if (fcntl(B_OLD_FD, F_GETFD) != -1 || errno != EBADF)
		zt_fail("fd %d is open after restore: the registration number leaked", B_OLD_FD);

	bits = seen(f_fd, 1000);
	if (bits != 32)
		zt_fail("the outer epoll reports %#x, expected only the inner epoll (0x20)", bits);
	bits = 0;
	/* A and G are level-triggered and always ready: epoll_wait returns at once until T fires */
	for (int64_t end = zt_now_ns() + 2000000000LL; (bits & 7) != 7 && zt_now_ns() < end;) {
		bits |= seen(e_fd, 100);
		zt_sleep_ms(5);
	}
	if ((bits & 7) != 7)
		zt_fail("the epoll reports %#x, expected eventfd, timerfd and signalfd (0x7)", bits);
	if (bits & ~7u)
		zt_fail("the epoll reports %#x: something beyond eventfd, timerfd and signalfd", bits);
	if (write(b_fd, &one, sizeof(one)) != sizeof(one))
		zt_fail("write B: %s", strerror(errno));
	if (!(seen(e_fd, 1000) & 16))
		zt_fail("eventfd B, registered under a number since closed, is not reported after a write");
	{
		struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x5E };
		if (epoll_ctl(e_fd, EPOLL_CTL_MOD, s_fd, &ev) != 0)
			zt_fail("epoll_ctl MOD of the one-shot target: %s", strerror(errno));
		if (!(seen(e_fd, 1000) & 8))
			zt_fail("the one-shot target is not reported once re-armed");
	}

	if (read_count(a_fd, "eventfd A") != 7)
		zt_fail("eventfd A lost its count 7");
	for (int i = 0; i < 3; i++)
		if (read_count(s_fd, "eventfd S") != 1)
			zt_fail("the semaphore eventfd read something else than 1");
	{
		uint64_t v;
		if (read(s_fd, &v, sizeof(v)) != -1 || errno != EAGAIN)
			zt_fail("the semaphore eventfd is not empty after 3 reads");
	}
	{
		struct signalfd_siginfo si;
		if (read(g_fd, &si, sizeof(si)) != sizeof(si))
			zt_fail("read signalfd: %s", strerror(errno));
		if (si.ssi_signo != SIGUSR1)
			zt_fail("the signalfd read signal %u, expected SIGUSR1", si.ssi_signo);
		if (kill(getpid(), SIGUSR2) != 0 || read(g_fd, &si, sizeof(si)) != sizeof(si) ||
		    si.ssi_signo != SIGUSR2)
			zt_fail("the signalfd does not read SIGUSR2 any more");
	}
	{
		struct itimerspec now;
		if (timerfd_gettime(t_fd, &now) != 0)
			zt_fail("timerfd_gettime: %s", strerror(errno));
		if (now.it_interval.tv_sec != 0 || now.it_interval.tv_nsec != 50000000)
			zt_fail("the timerfd interval is %ld.%09ld s, expected 0.05", (long)now.it_interval.tv_sec,
				now.it_interval.tv_nsec);
		(void)read_count(t_fd, "timerfd");  /* it has expired by now (the loop above saw it) */
		zt_sleep_ms(120);
		if (read_count(t_fd, "timerfd") < 1)
			zt_fail("the timerfd stopped expiring");
	}
	zt_pass();
}
