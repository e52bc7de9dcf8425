/* tree_session_orphan.c - a daemon's double fork under a child subreaper: a session whose
 * leader has exited.
 *
 * Before READY: the root becomes a child subreaper and forks A; A starts a session
 * (setsid) and forks B, then exits (the root reaps it). B, handed to the root, is in
 * session A and group A, whose leader is gone; B forks C (in the same session and group).
 * After SIGTERM: the root checks B's parent, session and group from outside, then SIGTERMs
 * B. B checks its own ids and parent, SIGTERMs C, which checks its ids and parent and exits
 * 5; B requires that and exits 6. The root requires 6.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>

static void check_ids(const char *who, pid_t sid, pid_t ppid, int code)
{
	if (getsid(0) != sid || getpgrp() != sid || getppid() != ppid)
		zt_child_fail(code, "%s sees sid %d pgid %d ppid %d, expected sid %d pgid %d ppid %d", who, (int)getsid(0),
			      (int)getpgrp(), (int)getppid(), (int)sid, (int)sid, (int)ppid);
}

static void b_main(pid_t root, pid_t a, int ready_w)
{
	pid_t b = getpid(), c;
	int st;

	c = fork();
	if (c < 0)
		zt_child_fail(20, "fork C: %s", strerror(errno));
	if (c == 0) {
		zt_wait_stop();
		check_ids("C", a, b, 21);
		_exit(5);
	}
	if (zt_write_all(ready_w, &b, sizeof(b)) != 0 || zt_write_all(ready_w, &c, sizeof(c)) != 0)
		zt_child_fail(22, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	check_ids("B", a, root, 23);
	kill(c, SIGTERM);
	while (waitpid(c, &st, 0) < 0)
		if (errno != EINTR)
			zt_child_fail(24, "waitpid(C): %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 5)
		zt_child_fail(25, "C finished with wait status %#x, expected exit 5", st);
	_exit(6);
}

int main(void)
{
	pid_t root = getpid(), a, b, c;
	int ready[2];
	char state;
	pid_t ppid;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("setup: %s", strerror(errno));
	a = zt_tree_fork();
	if (a == 0) {
		pid_t kid;
		close(ready[0]);
		if (setsid() < 0)
			_exit(30);
		kid = fork();
		if (kid < 0)
			_exit(31);
		if (kid == 0)
			b_main(root, getsid(0), ready[1]);
		_exit(0);
	}
	close(ready[1]);
	zt_tree_expect_exit(a, 0, "A");
	if (zt_read_full(ready[0], &b, sizeof(b)) != sizeof(b) || zt_read_full(ready[0], &c, sizeof(c)) != sizeof(c))
		zt_tree_fail("B did not report ready");
	zt_tree_add(b);
	zt_tree_add(c);
	close(ready[0]);
	/* A's exit hands B to the root, the subreaper */
	for (int i = 0; i < 1000 && (zt_proc_stat(b, &state, &ppid) != 0 || ppid != root); i++)
		zt_sleep_ms(1);
	if (getsid(b) != a || getpgid(b) != a || ppid != root)
		zt_tree_fail("before READY: B has sid %d pgid %d ppid %d, expected %d %d %d", (int)getsid(b),
			     (int)getpgid(b), (int)ppid, (int)a, (int)a, (int)root);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(b, "B");
	if (zt_proc_stat(b, &state, &ppid) != 0 || ppid != root || getsid(b) != a || getpgid(b) != a ||
	    getsid(c) != a || getpgid(c) != a)
		zt_tree_fail("after: B has sid %d pgid %d ppid %d, C sid %d pgid %d; expected session and group %d, "
			     "B's parent %d", (int)getsid(b), (int)getpgid(b), (int)ppid, (int)getsid(c), (int)getpgid(c),
			     (int)a, (int)root);
	if (kill(b, SIGTERM) != 0)
		zt_tree_fail("kill(B): %s", strerror(errno));
	zt_tree_expect_exit(b, 6, "B");
	zt_pass();
}
