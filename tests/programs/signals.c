/* signals.c - signal dispositions, masks, the alternate stack and pending signals.
 *
 * Before READY:
 *   SIGUSR1  SA_SIGINFO|SA_ONSTACK handler, sa_mask {SIGWINCH}, with a sigaltstack;
 *            the handler checks it runs on the alternate stack.
 *   SIGUSR2  handler; blocked with sigprocmask and raise()d: pending.
 *   SIGRTMIN+2 SA_SIGINFO handler; blocked; sigqueue()d twice (values 111, 222): pending, queued.
 *   SIGHUP   SIG_IGN.
 *   SIGINT   handler with SA_RESTART|SA_NODEFER and sa_mask {SIGQUIT, SIGRTMIN+5, SIGWINCH}.
 *   blocked mask {SIGUSR2, SIGRTMIN+2, SIGWINCH, SIGRTMAX-1}.
 * Every sigaction (handler, flags, restorer, mask) of signals 1..SIGRTMAX is recorded.
 * After SIGTERM: every sigaction, the alternate stack and the blocked mask are
 * compared with the record; exactly SIGUSR2 and SIGRTMIN+2 are pending; SIGUSR1
 * and SIGINT handlers fire as configured; SIGHUP is ignored; unblocking
 * delivers SIGUSR2 once and SIGRTMIN+2 twice with values 111 then 222.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)
static char altstack[ALTSTACK_SIZE] __attribute__((aligned(16)));

static volatile sig_atomic_t usr1_count, usr1_on_alt, usr1_ss_onstack, usr1_info_ok;
static volatile sig_atomic_t usr2_count;
static volatile sig_atomic_t rt_count, rt_bad;
static volatile int rt_values[4];
static volatile sig_atomic_t int_count, int_mask_ok;

static void usr1_handler(int sig, siginfo_t *si, void *uc)
{
	char local;
	stack_t ss;

	(void)uc;
	usr1_count++;
	usr1_on_alt = (uintptr_t)&local >= (uintptr_t)altstack &&
		      (uintptr_t)&local < (uintptr_t)altstack + ALTSTACK_SIZE;
	usr1_ss_onstack = sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
	usr1_info_ok = sig == SIGUSR1 && si->si_signo == SIGUSR1 && si->si_code == SI_TKILL &&
		       si->si_pid == getpid();
}

static void usr2_handler(int sig)
{
	(void)sig;
	usr2_count++;
}

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig != SIGRTMIN + 2 || si->si_code != SI_QUEUE || si->si_pid != getpid() || si->si_uid != getuid())
		rt_bad = 1;
	if (rt_count < 4)
		rt_values[rt_count] = si->si_value.sival_int;
	rt_count++;
}

static void int_handler(int sig)
{
	sigset_t m;

	(void)sig;
	int_count++;
	sigprocmask(SIG_BLOCK, NULL, &m);
	/* SA_NODEFER: SIGINT itself not blocked; sa_mask members blocked */
	int_mask_ok = !sigismember(&m, SIGINT) && sigismember(&m, SIGQUIT) && sigismember(&m, SIGRTMIN + 5) &&
		      sigismember(&m, SIGWINCH);
}

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 /* added by glibc, not in its headers */
#endif

#define NSIGS 65 /* 1..64 on x86_64 */

struct act {
	int ok;
	void *handler;
	int flags;
	void *restorer;
	uint64_t mask;
};

static struct act acts[NSIGS];

static uint64_t set_bits(const sigset_t *s)
{
	uint64_t m = 0;
	for (int i = 1; i < NSIGS; i++)
		if (sigismember(s, i) == 1)
			m |= 1ULL << (i - 1);
	return m;
}

static void get_act(int sig, struct act *a)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	memset(a, 0, sizeof(*a));
	a->ok = sigaction(sig, NULL, &sa) == 0;
	if (!a->ok)
		return;
	a->handler = (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
	a->flags = sa.sa_flags;
	a->restorer = (void *)sa.sa_restorer;
	a->mask = set_bits(&sa.sa_mask);
}

static void set_act(int sig, void *handler, int flags, const int *mask_sigs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))handler;
	else
		sa.sa_handler = (void (*)(int))handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	if (sigaction(sig, &sa, NULL) != 0)
		zt_fail("sigaction(%d): %s", sig, strerror(errno));
}

static void expect_act(int sig, void *handler, int flags, uint64_t mask)
{
	struct act a;

	get_act(sig, &a);
	if (!a.ok)
		zt_fail("sigaction(%d) query failed", sig);
	if (a.handler != handler)
		zt_fail("signal %d: handler %p, expected %p", sig, a.handler, handler);
	if ((a.flags & ~SA_RESTORER) != flags)
		zt_fail("signal %d: flags %#x, expected %#x", sig, a.flags & ~SA_RESTORER, flags);
	if (a.mask != mask)
		zt_fail("signal %d: sa_mask %#llx, expected %#llx", sig, (unsigned long long)a.mask,
			(unsigned long long)mask);
}

#define BIT(s) (1ULL << ((s) - 1))

int main(void)
{
	stack_t ss;
	sigset_t block, cur, pend;
	uint64_t blocked_before;

	ss.ss_sp = altstack;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0)
		zt_fail("sigaltstack: %s", strerror(errno));

	set_act(SIGUSR1, (void *)usr1_handler, SA_SIGINFO | SA_ONSTACK, (const int[]){ SIGWINCH, 0 });
	set_act(SIGUSR2, (void *)usr2_handler, 0, NULL);
	set_act(SIGRTMIN + 2, (void *)rt_handler, SA_SIGINFO, NULL);
	set_act(SIGHUP, (void *)SIG_IGN, 0, NULL);
	set_act(SIGINT, (void *)int_handler, SA_RESTART | SA_NODEFER,
		(const int[]){ SIGQUIT, SIGRTMIN + 5, SIGWINCH, 0 });

	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 2);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, SIGRTMAX - 1);
	if (sigprocmask(SIG_BLOCK, &block, NULL) != 0)
		zt_fail("sigprocmask: %s", strerror(errno));
	raise(SIGUSR2);
	if (sigqueue(getpid(), SIGRTMIN + 2, (union sigval){ .sival_int = 111 }) != 0 ||
	    sigqueue(getpid(), SIGRTMIN + 2, (union sigval){ .sival_int = 222 }) != 0)
		zt_fail("sigqueue: %s", strerror(errno));

	/* the setup is what we intend */
	expect_act(SIGUSR1, (void *)usr1_handler, SA_SIGINFO | SA_ONSTACK, BIT(SIGWINCH));
	expect_act(SIGUSR2, (void *)usr2_handler, 0, 0);
	expect_act(SIGRTMIN + 2, (void *)rt_handler, SA_SIGINFO, 0);
	expect_act(SIGHUP, (void *)SIG_IGN, 0, 0);
	expect_act(SIGINT, (void *)int_handler, SA_RESTART | SA_NODEFER,
		   BIT(SIGQUIT) | BIT(SIGRTMIN + 5) | BIT(SIGWINCH));
	for (int i = 1; i < NSIGS; i++)
		get_act(i, &acts[i]);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	blocked_before = set_bits(&cur);
	if (blocked_before != (BIT(SIGUSR2) | BIT(SIGRTMIN + 2) | BIT(SIGWINCH) | BIT(SIGRTMAX - 1)))
		zt_fail("blocked mask setup %#llx", (unsigned long long)blocked_before);
	sigpending(&pend);
	if (set_bits(&pend) != (BIT(SIGUSR2) | BIT(SIGRTMIN + 2)))
		zt_fail("pending setup %#llx", (unsigned long long)set_bits(&pend));

	zt_ready();
	zt_wait_stop();

	/* dispositions */
	for (int i = 1; i < NSIGS; i++) {
		struct act a;
		get_act(i, &a);
		if (a.ok != acts[i].ok)
			zt_fail("signal %d: sigaction query %s now, %s before", i, a.ok ? "works" : "fails",
				acts[i].ok ? "worked" : "failed");
		if (!a.ok)
			continue;
		if (a.handler != acts[i].handler)
			zt_fail("signal %d: handler %p, was %p", i, a.handler, acts[i].handler);
		if (a.flags != acts[i].flags)
			zt_fail("signal %d: sa_flags %#x, was %#x", i, a.flags, acts[i].flags);
		if (a.restorer != acts[i].restorer)
			zt_fail("signal %d: sa_restorer %p, was %p", i, a.restorer, acts[i].restorer);
		if (a.mask != acts[i].mask)
			zt_fail("signal %d: sa_mask %#llx, was %#llx", i, (unsigned long long)a.mask,
				(unsigned long long)acts[i].mask);
	}
	expect_act(SIGUSR1, (void *)usr1_handler, SA_SIGINFO | SA_ONSTACK, BIT(SIGWINCH));
	expect_act(SIGINT, (void *)int_handler, SA_RESTART | SA_NODEFER,
		   BIT(SIGQUIT) | BIT(SIGRTMIN + 5) | BIT(SIGWINCH));
	expect_act(SIGHUP, (void *)SIG_IGN, 0, 0);

	/* alternate stack */
	memset(&ss, 0, sizeof(ss));
	if (sigaltstack(NULL, &ss) != 0)
		zt_fail("sigaltstack query: %s", strerror(errno));
	if (ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags != 0)
		zt_fail("sigaltstack is sp=%p size=%zu flags=%#x, expected sp=%p size=%d flags=0", ss.ss_sp,
			ss.ss_size, ss.ss_flags, (void *)altstack, ALTSTACK_SIZE);

	/* blocked and pending */
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (set_bits(&cur) != blocked_before)
		zt_fail("blocked mask %#llx, was %#llx", (unsigned long long)set_bits(&cur),
			(unsigned long long)blocked_before);
	sigpending(&pend);
	if (set_bits(&pend) != (BIT(SIGUSR2) | BIT(SIGRTMIN + 2)))
		zt_fail("pending set %#llx, expected SIGUSR2|SIGRTMIN+2 (%#llx)", (unsigned long long)set_bits(&pend),
			(unsigned long long)(BIT(SIGUSR2) | BIT(SIGRTMIN + 2)));
	if (usr1_count || usr2_count || rt_count || int_count)
		zt_fail("handlers ran before being triggered: usr1 %d usr2 %d rt %d int %d", (int)usr1_count,
			(int)usr2_count, (int)rt_count, (int)int_count);

	/* SIGUSR1 runs on the alternate stack */
	raise(SIGUSR1);
	if (usr1_count != 1)
		zt_fail("SIGUSR1 handler ran %d times", (int)usr1_count);
	if (!usr1_on_alt || !usr1_ss_onstack)
		zt_fail("SIGUSR1 handler not on the alternate stack (on_alt=%d SS_ONSTACK=%d)", (int)usr1_on_alt,
			(int)usr1_ss_onstack);
	if (!usr1_info_ok)
		zt_fail("SIGUSR1 siginfo wrong");

	/* SIGINT: SA_NODEFER and sa_mask in effect */
	raise(SIGINT);
	if (int_count != 1 || !int_mask_ok)
		zt_fail("SIGINT handler: count %d, mask ok %d", (int)int_count, (int)int_mask_ok);

	/* SIGHUP ignored */
	raise(SIGHUP);

	/* unblock the pending ones */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 2);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	if (usr2_count != 1)
		zt_fail("pending SIGUSR2 delivered %d times after unblocking, expected 1", (int)usr2_count);
	if (rt_count != 2 || rt_bad || rt_values[0] != 111 || rt_values[1] != 222)
		zt_fail("queued SIGRTMIN+2: delivered %d times (bad siginfo %d), values %d,%d, expected 2: 111,222",
			(int)rt_count, (int)rt_bad, rt_values[0], rt_values[1]);
	sigpending(&pend);
	if (set_bits(&pend) != 0)
		zt_fail("signals still pending: %#llx", (unsigned long long)set_bits(&pend));
	zt_pass();
}
