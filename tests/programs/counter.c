/* counter.c - the "hello world" of checkpointing (cf. DMTCP's example).
 *
 * Counts 1, 2, 3, ... and writes each number on its own line with write(2)
 * to count.txt (opened without O_APPEND, so the file offset matters) every
 * ~5 ms. After SIGTERM it re-reads count.txt and checks it holds exactly
 * 1..N, one per line, with N equal to the in-memory counter: no restart
 * from zero, no gaps, no duplicates, nothing after N.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PRE_READY 20 /* numbers written before READY: the offset is not 0 at dump time */

static long counter;

static void put_next(int fd)
{
	char line[32];
	long next = counter + 1;
	int n = snprintf(line, sizeof(line), "%ld\n", next);
	ssize_t w = write(fd, line, (size_t)n);

	/* a write(2) to a regular file is not interrupted by a signal handler */
	if (w != n)
		zt_fail("write(count.txt) of %ld returned %zd: %s", next, w, strerror(errno));
	counter = next;
}

int main(void)
{
	int fd = open("count.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	struct stat st;
	char *buf, *p, *end;
	long expect = 1;

	if (fd < 0)
		zt_fail("open(count.txt): %s", strerror(errno));
	for (int i = 0; i < PRE_READY; i++)
		put_next(fd);
	zt_ready();

	while (!zt_stop) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		put_next(fd);
		nanosleep(&ts, NULL); /* EINTR on SIGTERM ends the loop */
	}

	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (close(fd) != 0)
		zt_fail("close(count.txt): %s", strerror(errno));

	fd = open("count.txt", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		zt_fail("reopen count.txt: %s", strerror(errno));
	if (pos != st.st_size)
		zt_fail("file offset %lld != file size %lld", (long long)pos, (long long)st.st_size);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		zt_fail("malloc %lld", (long long)st.st_size);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size)
		zt_fail("short read of count.txt");
	buf[st.st_size] = '\0';
	close(fd);

	p = buf;
	end = buf + st.st_size;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *q;
		long v;

		if (!nl)
			zt_fail("line %ld is not terminated", expect);
		*nl = '\0';
		errno = 0;
		v = strtol(p, &q, 10);
		if (errno || q != nl || q == p)
			zt_fail("line %ld is not a number: '%.40s'", expect, p);
		if (v != expect)
			zt_fail("line %ld holds %ld (gap, duplicate or restart)", expect, v);
		expect++;
		p = nl + 1;
	}
	if (expect - 1 != counter)
		zt_fail("file holds 1..%ld but the in-memory counter is %ld", expect - 1, counter);
	if (counter <= PRE_READY)
		zt_fail("counter %ld did not advance after READY", counter);
	zt_pass();
}
