/* sigpipe_pending.c - SIGPIPE blocked and pending in the process-wide queue.
 *
 * ckpt's parasite may itself cause a SIGPIPE (a vmsplice into a page pipe whose reader, a
 * killed ckpt, is gone) and removes it on its way home; it must never remove one that was
 * the program's. After SIGTERM, SIGPIPE must still be pending, and be delivered exactly once
 * when unblocked.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pipes;

static void on_pipe(int sig)
{
	(void)sig;
	pipes++;
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_pipe;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL))
		zt_fail("sigaction: %s", strerror(errno));
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		zt_fail("sigprocmask: %s", strerror(errno));
	if (kill(getpid(), SIGPIPE)) /* process-directed: the shared queue */
		zt_fail("kill: %s", strerror(errno));

	zt_ready();
	zt_wait_stop();

	sigset_t pend;
	sigpending(&pend);
	if (!sigismember(&pend, SIGPIPE))
		zt_fail("SIGPIPE is no longer pending");
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	if (pipes != 1)
		zt_fail("SIGPIPE delivered %d times after unblocking, expected 1", (int)pipes);
	zt_pass();
}
