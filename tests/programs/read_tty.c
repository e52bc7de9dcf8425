/* read_tty.c - dumped while blocked in read() on a terminal.
 *
 * stdin must be a pseudo-terminal (the harness provides one). After READY it
 * blocks in read(0) until it has a whole line; the harness writes
 * "hello ckpt\n" to the pty master after the dump/restore. Then it waits for
 * SIGTERM and checks the line, and that fd 0 is still the same terminal
 * (same device, same controlling-terminal relation, same termios).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

int main(void)
{
	char line[256];
	size_t got = 0;
	struct stat st0, st1;
	struct termios t0, t1;
	char name0[256], name1[256];
	int ctty0, ctty1, nread = 0;

	if (!isatty(0))
		zt_fail("stdin is not a terminal (the harness must provide a pty)");
	if (fstat(0, &st0) != 0 || tcgetattr(0, &t0) != 0 || ttyname_r(0, name0, sizeof(name0)) != 0)
		zt_fail("fstat/tcgetattr/ttyname(0): %s", strerror(errno));
	ctty0 = tcgetsid(0) == getsid(0);

	zt_ready();

	while (got < sizeof(line) - 1 && (got == 0 || line[got - 1] != '\n')) {
		ssize_t n = read(0, line + got, sizeof(line) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue; /* SIGTERM may arrive before the line does */
		if (n < 0)
			zt_fail("read(0): %s", strerror(errno));
		if (n == 0)
			zt_fail("read(0): EOF after %zu bytes", got);
		got += (size_t)n;
		nread++;
	}
	line[got] = '\0';

	zt_wait_stop();

	if (strcmp(line, "hello ckpt\n") != 0)
		zt_fail("read '%.*s' (%zu bytes), expected 'hello ckpt\\n'", (int)(got && line[got - 1] == '\n' ? got - 1 : got),
			line, got);
	if (!isatty(0))
		zt_fail("stdin is no longer a terminal");
	if (fstat(0, &st1) != 0 || tcgetattr(0, &t1) != 0 || ttyname_r(0, name1, sizeof(name1)) != 0)
		zt_fail("fstat/tcgetattr/ttyname(0) after: %s", strerror(errno));
	if (st1.st_rdev != st0.st_rdev || strcmp(name0, name1) != 0)
		zt_fail("stdin is %s (rdev %lx), was %s (rdev %lx)", name1, (unsigned long)st1.st_rdev, name0,
			(unsigned long)st0.st_rdev);
	if (t1.c_iflag != t0.c_iflag || t1.c_oflag != t0.c_oflag || t1.c_cflag != t0.c_cflag ||
	    t1.c_lflag != t0.c_lflag)
		zt_fail("termios changed");
	ctty1 = tcgetsid(0) == getsid(0);
	if (ctty1 != ctty0)
		zt_fail("terminal %s the controlling terminal now, %s before", ctty1 ? "is" : "is not",
			ctty0 ? "was" : "was not");
	zt_pass();
}
