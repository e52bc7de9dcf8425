/* tree_exec.c - children that called execve() after the fork.
 *
 * Before READY the root forks two children that exec: /bin/sleep 1000 (a foreign,
 * dynamically linked program) and zt_tree_exec_helper (next to this program) with
 * arguments, an environment variable and a pipe fd. The exec is known to have happened
 * when a close-on-exec pipe reports EOF; the helper also reports "set up" on its pipe, and
 * sleep is waited for until it sleeps in (clock_)nanosleep, so nothing is still loading.
 * After SIGTERM: both are still running, still our children, with the same executable
 * (/proc/PID/exe) and command line; sleep sleeps again (or in restart_syscall); SIGTERM
 * kills sleep (WTERMSIG SIGTERM) and makes the helper check its own state and exit 7.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <libgen.h>
#include <sys/syscall.h>

extern char **environ;

struct kid {
	const char *name;
	pid_t pid;
	char exe[4096];
	char cmdline[512];
	long cmdline_len;
};

static struct kid kids[2];

static void read_ids(struct kid *k, char *exe, size_t exelen, char *cmd, long *cmdlen)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)k->pid);
	n = readlink(path, exe, exelen - 1);
	if (n < 0)
		zt_tree_fail("readlink %s: %s", path, strerror(errno));
	exe[n] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)k->pid);
	*cmdlen = zt_read_file(path, cmd, 512);
	if (*cmdlen <= 0)
		zt_tree_fail("cannot read %s", path);
}

/* sleep(1) sleeps in clock_nanosleep (older libcs: nanosleep); once a ptrace stop (the
 * dump's freeze) has interrupted it, the kernel continues it as restart_syscall. */
static int sleeping(pid_t pid, long timeout_ms)
{
	int64_t end = zt_now_ns() + timeout_ms * 1000000LL;

	do {
		if (zt_wait_in_syscall(pid, SYS_clock_nanosleep, 20) || zt_wait_in_syscall(pid, SYS_nanosleep, 20) ||
		    zt_wait_in_syscall(pid, SYS_restart_syscall, 20))
			return 1;
	} while (zt_now_ns() < end);
	return 0;
}

/* fork + execve; returns once the exec has happened (or fails the test). */
static pid_t spawn(const char *path, char *const argv[], char *const envp[], int keep_fd)
{
	int errp[2], err = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(errp, O_CLOEXEC) != 0)
		zt_tree_fail("pipe2: %s", strerror(errno));
	pid = zt_tree_fork();
	if (pid == 0) {
		close(errp[0]);
		for (int fd = 3; fd < 64; fd++)
			if (fd != errp[1] && fd != keep_fd)
				close(fd);
		execve(path, argv, envp);
		err = errno;
		(void)!write(errp[1], &err, sizeof(err));
		_exit(127);
	}
	close(errp[1]);
	n = zt_read_full(errp[0], &err, sizeof(err));
	close(errp[0]);
	if (n != 0)
		zt_tree_fail("execve(%s) failed: %s", path, n == sizeof(err) ? strerror(err) : "?");
	return pid;
}

int main(void)
{
	char self[4096], helper[4200], fdarg[16], exe[4096], cmd[512];
	char *env[256];
	int hp[2], ne = 0, st;
	ssize_t n;
	long cmdlen;
	char byte;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		zt_fail("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	snprintf(helper, sizeof(helper), "%s/zt_tree_exec_helper", dirname(self));
	if (access(helper, X_OK) != 0)
		zt_fail("%s: %s", helper, strerror(errno));
	if (access("/bin/sleep", X_OK) != 0)
		zt_fail("/bin/sleep: %s", strerror(errno));
	for (char **e = environ; *e && ne < 254; e++)
		env[ne++] = *e;
	env[ne++] = "ZT_TREE_EXEC=42";
	env[ne] = NULL;

	/* sleep */
	{
		char *argv[] = { "sleep", "1000", NULL };
		kids[0].name = "sleep";
		kids[0].pid = spawn("/bin/sleep", argv, env, -1);
		if (!sleeping(kids[0].pid, 5000))
			zt_tree_fail("setup: sleep (pid %d) does not sleep in nanosleep (syscall %ld)", (int)kids[0].pid,
				     zt_syscall_of(kids[0].pid));
	}
	/* the helper */
	{
		if (pipe2(hp, 0) != 0)
			zt_tree_fail("pipe2: %s", strerror(errno));
		snprintf(fdarg, sizeof(fdarg), "%d", hp[1]);
		char *argv[] = { "zt_tree_exec_helper", "hello", "world", fdarg, NULL };
		kids[1].name = "the helper";
		kids[1].pid = spawn(helper, argv, env, hp[1]);
		close(hp[1]);
		if (zt_read_full(hp[0], &byte, 1) != 1 || byte != 'h' || zt_read_full(hp[0], &byte, 1) != 0)
			zt_tree_fail("setup: the helper did not report 'h' and close its pipe");
		close(hp[0]);
	}
	for (int i = 0; i < 2; i++)
		read_ids(&kids[i], kids[i].exe, sizeof(kids[i].exe), kids[i].cmdline, &kids[i].cmdline_len);
	if (strstr(kids[0].exe, "sleep") == NULL || strstr(kids[1].exe, "zt_tree_exec_helper") == NULL)
		zt_tree_fail("setup: executables %s and %s", kids[0].exe, kids[1].exe);

	zt_ready();
	zt_wait_stop();

	for (int i = 0; i < 2; i++) {
		zt_tree_expect_alive_child(kids[i].pid, kids[i].name);
		read_ids(&kids[i], exe, sizeof(exe), cmd, &cmdlen);
		if (strcmp(exe, kids[i].exe) != 0)
			zt_tree_fail("%s (pid %d) runs %s, it ran %s", kids[i].name, (int)kids[i].pid, exe, kids[i].exe);
		if (cmdlen != kids[i].cmdline_len || memcmp(cmd, kids[i].cmdline, (size_t)cmdlen) != 0)
			zt_tree_fail("%s (pid %d): /proc/PID/cmdline changed", kids[i].name, (int)kids[i].pid);
	}
	if (!sleeping(kids[0].pid, 2000))
		zt_tree_fail("sleep (pid %d) no longer sleeps (syscall %ld)", (int)kids[0].pid, zt_syscall_of(kids[0].pid));
	for (int i = 0; i < 2; i++)
		if (kill(kids[i].pid, SIGTERM) != 0)
			zt_tree_fail("kill(%s): %s", kids[i].name, strerror(errno));
	st = zt_tree_reap(kids[0].pid, "sleep");
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
		zt_tree_fail("sleep finished with wait status %#x, expected killed by SIGTERM", st);
	zt_tree_expect_exit(kids[1].pid, 7, "the helper");
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		zt_fail("the root has a child it did not fork");
	zt_pass();
}
