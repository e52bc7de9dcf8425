/* tree_pty.c - a pseudo-terminal pair inside the tree, as `script` and tmux hold one.
 *
 * Before READY: the root opens a pty pair (master only, packet mode, window 33x111, ^B as
 * the interrupt character) and forks C. C starts a session and opens the slave, which
 * becomes its controlling terminal, turns echo off, forks G in a process group of its own
 * and makes G the foreground group. C writes "before\n" to the terminal; the root does not
 * read it: it sits in the pair, unread (as "before\r\n": ONLCR).
 * After SIGTERM: the root finds the same pair (same /dev/pts/N, window, termios), reads
 * "before\r\n" through packet mode, tells C to finish and types "go\n". G, the foreground,
 * reads "go" as a line, checks that it is the foreground group of its controlling terminal
 * and writes "g-ok\n"; C checks the terminal's session is its own, reaps G (7) and exits 9.
 * The root reads "g-ok\r\n".
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>

static char slave_name[64];

/* From the master, in packet mode: every read starts with a status byte (0 for data). */
static void read_master(int m, const char *want)
{
	size_t len = strlen(want), got = 0;
	char buf[256], all[256];
	int64_t end = zt_now_ns() + 5000 * 1000000LL;

	while (got < len && zt_now_ns() < end) {
		ssize_t n = read(m, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			zt_tree_fail("read(master): %s", strerror(errno));
		if (n == 0 || buf[0] != 0)
			zt_tree_fail("read(master) gave %zd bytes with status byte %#x, expected data (0)", n,
				     n ? (unsigned char)buf[0] : 0);
		if (got + (size_t)(n - 1) > len)
			zt_tree_fail("the master has more than the %zu bytes of \"%s\"", len, want);
		memcpy(all + got, buf + 1, (size_t)(n - 1));
		got += (size_t)(n - 1);
	}
	if (got != len || memcmp(all, want, len) != 0)
		zt_tree_fail("the master read %zu bytes \"%.*s\", expected \"%s\"", got, (int)got, all, want);
}

static void grandchild_main(int s)
{
	char line[16];
	ssize_t n;

	zt_wait_stop();
	if (tcgetpgrp(s) != getpgrp())
		zt_child_fail(30, "G is not the foreground group: tcgetpgrp %d, getpgrp %d", (int)tcgetpgrp(s),
			      (int)getpgrp());
	if (open("/dev/tty", O_RDWR | O_CLOEXEC) < 0)
		zt_child_fail(31, "G has no controlling terminal: /dev/tty: %s", strerror(errno));
	do
		n = read(s, line, sizeof(line));
	while (n < 0 && errno == EINTR);
	if (n != 3 || memcmp(line, "go\n", 3) != 0)
		zt_child_fail(32, "G read %zd bytes from the terminal, expected the line \"go\"", n);
	if (zt_write_all(s, "g-ok\n", 5) != 0)
		zt_child_fail(33, "G: write to the terminal: %s", strerror(errno));
	_exit(7);
}

static void child_main(int ready_w)
{
	struct termios t;
	pid_t g, sid = 0;
	int s, st;

	if (setsid() < 0)
		zt_child_fail(20, "setsid: %s", strerror(errno));
	s = open(slave_name, O_RDWR | O_CLOEXEC); /* no O_NOCTTY: it becomes C's terminal */
	if (s < 0)
		zt_child_fail(21, "open %s: %s", slave_name, strerror(errno));
	if (tcgetattr(s, &t) != 0)
		zt_child_fail(22, "tcgetattr: %s", strerror(errno));
	t.c_lflag &= ~(tcflag_t)ECHO;
	if (tcsetattr(s, TCSANOW, &t) != 0)
		zt_child_fail(23, "tcsetattr: %s", strerror(errno));
	g = fork();
	if (g < 0)
		zt_child_fail(24, "fork: %s", strerror(errno));
	if (g == 0) {
		setpgid(0, 0);
		grandchild_main(s);
	}
	if (setpgid(g, g) != 0 && errno != EACCES)
		zt_child_fail(25, "setpgid(G): %s", strerror(errno));
	if (tcsetpgrp(s, g) != 0)
		zt_child_fail(26, "tcsetpgrp(G): %s", strerror(errno));
	if (zt_write_all(s, "before\n", 7) != 0)
		zt_child_fail(27, "write to the terminal: %s", strerror(errno));
	if (zt_write_all(ready_w, &g, sizeof(g)) != 0)
		zt_child_fail(28, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (ioctl(s, TIOCGSID, &sid) != 0 || sid != getpid())
		zt_child_fail(40, "the terminal's session is %d, expected C's own %d", (int)sid, (int)getpid());
	if (tcgetpgrp(s) != g)
		zt_child_fail(41, "the foreground group is %d, expected G's %d", (int)tcgetpgrp(s), (int)g);
	kill(g, SIGTERM);
	while (waitpid(g, &st, 0) < 0)
		if (errno != EINTR)
			zt_child_fail(42, "waitpid(G): %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
		zt_child_fail(43, "G finished with wait status %#x, expected exit 7", st);
	_exit(9);
}

int main(void)
{
	struct winsize ws = { .ws_row = 33, .ws_col = 111 };
	struct termios t;
	int one = 1, ready[2], m;
	char name_after[64];
	pid_t kid, g;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, slave_name, sizeof(slave_name)) != 0)
		zt_fail("opening a pty pair: %s", strerror(errno));
	if (ioctl(m, TIOCSWINSZ, &ws) != 0 || ioctl(m, TIOCPKT, &one) != 0 || tcgetattr(m, &t) != 0)
		zt_fail("setting up the pty: %s", strerror(errno));
	t.c_cc[VINTR] = 2;
	if (tcsetattr(m, TCSANOW, &t) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("setting up: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		close(m);
		child_main(ready[1]);
	}
	close(ready[1]);
	if (zt_read_full(ready[0], &g, sizeof(g)) != sizeof(g))
		zt_tree_fail("the child did not report ready");
	zt_tree_add(g);
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "C");
	if (ptsname_r(m, name_after, sizeof(name_after)) != 0 || strcmp(name_after, slave_name) != 0)
		zt_tree_fail("the master's slave is %s now, was %s", name_after, slave_name);
	memset(&ws, 0, sizeof(ws));
	if (ioctl(m, TIOCGWINSZ, &ws) != 0 || ws.ws_row != 33 || ws.ws_col != 111)
		zt_tree_fail("window size %ux%u, expected 33x111", ws.ws_row, ws.ws_col);
	if (tcgetattr(m, &t) != 0 || t.c_cc[VINTR] != 2 || (t.c_lflag & ECHO) || !(t.c_lflag & ICANON) ||
	    !(t.c_oflag & OPOST))
		zt_tree_fail("termios lost: VINTR %d (want 2), ECHO %d (want 0), ICANON %d, OPOST %d", t.c_cc[VINTR],
			     !!(t.c_lflag & ECHO), !!(t.c_lflag & ICANON), !!(t.c_oflag & OPOST));
	read_master(m, "before\r\n");
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(C): %s", strerror(errno));
	if (zt_write_all(m, "go\n", 3) != 0)
		zt_tree_fail("write(master): %s", strerror(errno));
	zt_tree_expect_exit(kid, 9, "C");
	read_master(m, "g-ok\r\n");
	zt_pass();
}
