/* tree_sigchld.c - a SIGCHLD handler (SA_SIGINFO) that sees children exit after restore.
 *
 * Before READY the root installs a SIGCHLD handler with SA_SIGINFO (sa_mask SIGUSR2, no
 * SA_NOCLDSTOP, so stops and continues of a child would be reported too) and forks two
 * children that wait. After SIGTERM: the handler is installed as before and has not run
 * yet (neither the dump nor the restore may make a child stop, continue or exit visibly).
 * Then, with SIGCHLD blocked outside ppoll(): child 1 is told to exit 33 and the handler
 * must run exactly once, with si_signo SIGCHLD, si_code CLD_EXITED, si_pid child 1,
 * si_status 33, si_uid ours; then child 2 is killed with SIGUSR1 and the handler must run
 * once more with CLD_KILLED, si_pid child 2, si_status SIGUSR1. waitpid() confirms both.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <poll.h>

#define MAXREC 8

struct rec {
	int signo, code, status;
	pid_t pid;
	uid_t uid;
};

static volatile sig_atomic_t n_chld;
static struct rec recs[MAXREC];

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (n_chld < MAXREC) {
		recs[n_chld].signo = sig == si->si_signo ? si->si_signo : -1;
		recs[n_chld].code = si->si_code;
		recs[n_chld].status = si->si_status;
		recs[n_chld].pid = si->si_pid;
		recs[n_chld].uid = si->si_uid;
	}
	n_chld++;
}

/* Wait (SIGCHLD unblocked only inside ppoll) until the handler has run want times. */
static void wait_handler(int want, const sigset_t *during)
{
	int64_t end = zt_now_ns() + (int64_t)ZT_TREE_WAIT_MS * 1000000LL;

	while (n_chld < want) {
		int64_t left = end - zt_now_ns();
		if (left <= 0)
			zt_tree_fail("the SIGCHLD handler ran %d times, expected %d", (int)n_chld, want);
		struct timespec ts = { left / 1000000000LL, left % 1000000000LL };
		ppoll(NULL, 0, &ts, during);
	}
}

static void expect_rec(int i, int code, pid_t pid, int status, const char *what)
{
	struct rec *r = &recs[i];

	if (r->signo != SIGCHLD || r->code != code || r->pid != pid || r->status != status || r->uid != getuid())
		zt_tree_fail("%s: the handler got signo %d code %d pid %d status %d uid %d, expected signo %d code %d "
			     "pid %d status %d uid %d",
			     what, r->signo, r->code, (int)r->pid, r->status, (int)r->uid, SIGCHLD, code, (int)pid, status,
			     (int)getuid());
}

int main(void)
{
	struct sigaction sa, now;
	sigset_t chld, old, during;
	pid_t kid[2];
	int ready[2], st;
	char buf[4];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGCHLD, &sa, NULL) != 0)
		zt_fail("sigaction: %s", strerror(errno));
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		kid[i] = zt_tree_fork();
		if (kid[i] == 0) {
			close(ready[0]);
			signal(SIGCHLD, SIG_DFL);
			if (zt_write_all(ready[1], "r", 1) != 0)
				zt_child_fail(20, "write(ready): %s", strerror(errno));
			close(ready[1]);
			if (i == 0) {
				zt_wait_stop();
				_exit(33);
			}
			for (;;)
				pause(); /* until SIGUSR1 */
		}
	}
	close(ready[1]);
	if (zt_read_full(ready[0], buf, sizeof(buf)) != 2)
		zt_tree_fail("the children did not both report ready");
	close(ready[0]);
	if (n_chld != 0)
		zt_tree_fail("setup: SIGCHLD arrived before READY (code %d)", recs[0].code);

	zt_ready();
	zt_wait_stop();

	if (sigaction(SIGCHLD, NULL, &now) != 0)
		zt_tree_fail("sigaction query: %s", strerror(errno));
	if (!(now.sa_flags & SA_SIGINFO) || now.sa_sigaction != on_chld || !sigismember(&now.sa_mask, SIGUSR2) ||
	    sigismember(&now.sa_mask, SIGUSR1) || (now.sa_flags & SA_NOCLDSTOP))
		zt_tree_fail("the SIGCHLD handler is not installed as before (flags %#x)", (unsigned)now.sa_flags);
	if (n_chld != 0)
		zt_tree_fail("SIGCHLD came %d times before any child exited (first: code %d pid %d status %d)",
			     (int)n_chld, recs[0].code, (int)recs[0].pid, recs[0].status);
	zt_tree_expect_alive_child(kid[0], "child 1");
	zt_tree_expect_alive_child(kid[1], "child 2");

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	during = old;
	sigdelset(&during, SIGCHLD);

	if (kill(kid[0], SIGTERM) != 0)
		zt_tree_fail("kill(child 1): %s", strerror(errno));
	wait_handler(1, &during);
	expect_rec(0, CLD_EXITED, kid[0], 33, "child 1");
	if (waitpid(kid[0], &st, WNOHANG) != kid[0] || !WIFEXITED(st) || WEXITSTATUS(st) != 33)
		zt_tree_fail("child 1 is not an exited child with status 33 after its SIGCHLD");
	zt_tree_forget(kid[0]);

	if (kill(kid[1], SIGUSR1) != 0)
		zt_tree_fail("kill(child 2): %s", strerror(errno));
	wait_handler(2, &during);
	expect_rec(1, CLD_KILLED, kid[1], SIGUSR1, "child 2");
	if (waitpid(kid[1], &st, WNOHANG) != kid[1] || !WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR1)
		zt_tree_fail("child 2 is not a child killed by SIGUSR1 after its SIGCHLD");
	zt_tree_forget(kid[1]);
	if (n_chld != 2)
		zt_fail("the SIGCHLD handler ran %d times, expected 2", (int)n_chld);
	zt_pass();
}
