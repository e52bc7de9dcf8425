/* tree_pgrp.c - process groups and sessions in a three-level tree.
 *
 *   R (root: session and group leader, the harness starts it with setsid)
 *   +- A   setpgid(0, 0): group A, session R
 *   |  +- B   born in A's group: group A, session R
 *   +- C   setsid(): session C, group C
 *      +- D   born in C's session: group C, session C
 *
 * Each of A, B, C, D reports its pid on a pipe once it is set up; R waits for all four.
 * After SIGTERM R checks getpgid()/getsid() of all four and the parents of B and D from
 * outside, and its own; then SIGTERMs A and C. A and C check their own ids and parent and
 * their child's ids, SIGTERM their child, which checks its own ids and parent and exits
 * (B 12, D 14); A and C check that status and exit 11 and 13. R requires 11 and 13.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>

struct rec {
	char who;
	pid_t pid;
};

static pid_t root;

static void report(int w, char who)
{
	struct rec r = { who, getpid() };

	if (zt_write_all(w, &r, sizeof(r)) != 0)
		zt_child_fail(40, "%c: write(report): %s", who, strerror(errno));
	close(w);
}

/* From inside: getpgid(0), getsid(0), getppid(). */
static void check_self(char who, pid_t pgid, pid_t sid, pid_t ppid, int code)
{
	if (getpgid(0) != pgid || getsid(0) != sid || getppid() != ppid)
		zt_child_fail(code, "%c sees pgid %d sid %d ppid %d, expected pgid %d sid %d ppid %d", who,
			      (int)getpgid(0), (int)getsid(0), (int)getppid(), (int)pgid, (int)sid, (int)ppid);
}

/* B or D: wait for SIGTERM, check, exit. */
static void leaf(char who, int w, pid_t pgid, pid_t sid, pid_t ppid, int ok)
{
	report(w, who);
	zt_wait_stop();
	check_self(who, pgid, sid, ppid, ok + 30);
	_exit(ok);
}

/* A or C: set up, fork the leaf, wait for SIGTERM, check, pass it on. */
static void middle(char who, int w, int new_session, int ok)
{
	pid_t me = getpid(), kid, sid;
	char buf[96];
	int st, r;

	if (new_session) {
		if (setsid() != me)
			zt_child_fail(41, "%c: setsid: %s", who, strerror(errno));
		sid = me;
	} else {
		if (setpgid(0, 0) != 0)
			zt_child_fail(42, "%c: setpgid: %s", who, strerror(errno));
		sid = root;
	}
	kid = fork();
	if (kid < 0)
		zt_child_fail(43, "%c: fork: %s", who, strerror(errno));
	if (kid == 0)
		leaf(who + 1, w, me, sid, me, ok + 1);
	report(w, who);

	zt_wait_stop();

	check_self(who, me, sid, root, ok + 30);
	if (getpgid(kid) != me || getsid(kid) != sid)
		zt_child_fail(ok + 40, "%c sees its child %d in group %d session %d, expected %d and %d", who, (int)kid,
			      (int)getpgid(kid), (int)getsid(kid), (int)me, (int)sid);
	if (kill(kid, SIGTERM) != 0)
		zt_child_fail(ok + 50, "%c: kill(child): %s", who, strerror(errno));
	r = zt_tree_wait(kid, &st, ZT_TREE_WAIT_MS);
	if (r != 1)
		zt_child_fail(ok + 60, "%c: its child %d did not exit: %s", who, (int)kid, r ? strerror(errno) : "timeout");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != ok + 1)
		zt_child_fail(ok + 70, "%c: its child %c finished with %s, expected exit status %d", who, who + 1,
			      zt_status_text(st, buf, sizeof(buf)), ok + 1);
	_exit(ok);
}

static void expect_ids(char who, pid_t pid, pid_t pgid, pid_t sid, pid_t ppid)
{
	char state;
	pid_t pp = -1;

	if (getpgid(pid) != pgid || getsid(pid) != sid)
		zt_tree_fail("%c (pid %d) is in group %d session %d, expected group %d session %d", who, (int)pid,
			     (int)getpgid(pid), (int)getsid(pid), (int)pgid, (int)sid);
	if (zt_proc_stat(pid, &state, &pp) != 0 || pp != ppid || state == 'Z')
		zt_tree_fail("%c (pid %d) has parent %d state %c, expected a live process with parent %d", who, (int)pid,
			     (int)pp, state, (int)ppid);
}

int main(void)
{
	pid_t a, c, pid[4] = { 0, 0, 0, 0 };
	int rep[2];
	struct rec r;

	root = getpid();
	if (getsid(0) != root || getpgid(0) != root)
		zt_fail("the root is not a session leader (sid %d pgid %d pid %d)", (int)getsid(0), (int)getpgid(0),
			(int)root);
	if (pipe2(rep, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	a = zt_tree_fork();
	if (a == 0) {
		close(rep[0]);
		middle('A', rep[1], 0, 11);
	}
	setpgid(a, a); /* also here: either order of the two calls gives the same group */
	c = zt_tree_fork();
	if (c == 0) {
		close(rep[0]);
		middle('C', rep[1], 1, 13);
	}
	close(rep[1]);
	for (int i = 0; i < 4; i++) {
		if (zt_read_full(rep[0], &r, sizeof(r)) != sizeof(r) || r.who < 'A' || r.who > 'D' || pid[r.who - 'A'])
			zt_tree_fail("setup: bad or missing report %d", i);
		pid[r.who - 'A'] = r.pid;
		if (r.who == 'B' || r.who == 'D')
			zt_tree_add(r.pid);
	}
	if (zt_read_full(rep[0], &r, sizeof(r)) != 0)
		zt_tree_fail("setup: extra report");
	close(rep[0]);
	if (pid[0] != a || pid[2] != c)
		zt_tree_fail("setup: A and C reported pids %d and %d, forked %d and %d", (int)pid[0], (int)pid[2], (int)a,
			     (int)c);
	/* sanity: the ids are set up as intended, so the checks below test what they claim */
	expect_ids('A', a, a, root, root);
	expect_ids('B', pid[1], a, root, a);
	expect_ids('C', c, c, c, root);
	expect_ids('D', pid[3], c, c, c);

	zt_ready();
	zt_wait_stop();

	if (getsid(0) != root || getpgid(0) != root)
		zt_tree_fail("the root is in group %d session %d, expected %d", (int)getpgid(0), (int)getsid(0), (int)root);
	zt_tree_expect_alive_child(a, "A");
	zt_tree_expect_alive_child(c, "C");
	expect_ids('A', a, a, root, root);
	expect_ids('B', pid[1], a, root, a);
	expect_ids('C', c, c, c, root);
	expect_ids('D', pid[3], c, c, c);
	if (kill(a, SIGTERM) != 0 || kill(c, SIGTERM) != 0)
		zt_tree_fail("kill: %s", strerror(errno));
	zt_tree_expect_exit(a, 11, "A");
	zt_tree_expect_exit(c, 13, "C");
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		zt_fail("the root has a child it did not fork");
	zt_pass();
}
