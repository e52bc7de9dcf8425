/* tree_zombie.c - exited, unreaped children (zombies) with their exit status.
 *
 * Before READY: one child exits with status 42, another is killed by SIGUSR1; the parent
 * waits until both are zombies with waitid(WNOWAIT), which does not reap them.
 * After SIGTERM each must still be a zombie (/proc state Z, parent us), waitid(WNOWAIT)
 * must report the same code and status, and waitpid() by pid must reap it at once with
 * WEXITSTATUS 42, and WTERMSIG SIGUSR1 without a core dump. Then the pids are gone and the
 * parent has no other child.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <sys/stat.h>

static void check_zombie(pid_t pid, const char *what, int code, int status)
{
	siginfo_t si;
	char state;
	pid_t ppid;

	if (zt_proc_stat(pid, &state, &ppid) != 0)
		zt_tree_fail("%s (pid %d) has no /proc entry", what, (int)pid);
	if (state != 'Z')
		zt_tree_fail("%s (pid %d) is in state %c, expected a zombie (Z)", what, (int)pid, state);
	if (ppid != getpid())
		zt_tree_fail("%s (pid %d) has parent %d, expected us (%d)", what, (int)pid, (int)ppid, (int)getpid());
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		zt_tree_fail("waitid(%s, WNOWAIT): %s", what, strerror(errno));
	if (si.si_pid != pid || si.si_code != code || si.si_status != status)
		zt_tree_fail("%s: waitid reports pid %d code %d status %d, expected pid %d code %d status %d", what,
			     (int)si.si_pid, si.si_code, si.si_status, (int)pid, code, status);
}

static int reap_now(pid_t pid, const char *what)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r != pid)
		zt_tree_fail("waitpid(%s, pid %d, WNOHANG) returned %d (%s): not an exited child", what, (int)pid,
			     (int)r, r < 0 ? strerror(errno) : "still running");
	zt_tree_forget(pid);
	return st;
}

int main(void)
{
	pid_t exited, killed;
	siginfo_t si;
	char path[64];
	int st;

	exited = zt_tree_fork();
	if (exited == 0)
		_exit(42);
	killed = zt_tree_fork();
	if (killed == 0) {
		for (;;)
			pause(); /* SIGUSR1's default action ends it */
	}
	if (kill(killed, SIGUSR1) != 0)
		zt_tree_fail("kill(SIGUSR1): %s", strerror(errno));
	/* until both are zombies, without reaping them */
	if (waitid(P_PID, (id_t)exited, &si, WEXITED | WNOWAIT) != 0 ||
	    waitid(P_PID, (id_t)killed, &si, WEXITED | WNOWAIT) != 0)
		zt_tree_fail("waitid(WNOWAIT): %s", strerror(errno));
	check_zombie(exited, "the exited child", CLD_EXITED, 42);
	check_zombie(killed, "the killed child", CLD_KILLED, SIGUSR1);

	zt_ready();
	zt_wait_stop();

	check_zombie(exited, "the exited child", CLD_EXITED, 42);
	check_zombie(killed, "the killed child", CLD_KILLED, SIGUSR1);
	st = reap_now(exited, "the exited child");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 42)
		zt_tree_fail("the exited child's wait status is %#x, expected exit status 42", st);
	st = reap_now(killed, "the killed child");
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR1 || WCOREDUMP(st))
		zt_tree_fail("the killed child's wait status is %#x, expected killed by SIGUSR1, no core", st);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d", (int)(i ? killed : exited));
		if (access(path, F_OK) == 0)
			zt_fail("%s still exists after the zombie was reaped", path);
	}
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		zt_fail("the parent has a child it did not fork");
	zt_pass();
}
