/* fprintf.c - the classic: a buffered FILE* being written while dumped.
 *
 * fopen()s numbers.txt and fprintf()s 1, 2, 3, ... one per line with the
 * default (full) buffering, one number every ~2 ms. The stdio buffer lives in
 * the heap and part of the output is always still in it. After SIGTERM the
 * FILE is fclose()d and the file re-read: every number 1..N must be there
 * exactly once, in order, and nothing else.
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

#define PRE_READY 1500 /* > 4 KiB before READY: some of it flushed, some buffered */

int main(void)
{
	FILE *f = fopen("numbers.txt", "w");
	long n = 0, expect = 1;
	struct stat st;
	char *buf, *p, *end;
	int fd;

	if (!f)
		zt_fail("fopen(numbers.txt): %s", strerror(errno));
	while (n < PRE_READY) {
		if (fprintf(f, "%ld\n", ++n) < 0)
			zt_fail("fprintf: %s", strerror(errno));
	}
	zt_ready();

	while (!zt_stop) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		if (fprintf(f, "%ld\n", ++n) < 0)
			zt_fail("fprintf(%ld): %s", n, strerror(errno));
		nanosleep(&ts, NULL);
	}
	if (fclose(f) != 0)
		zt_fail("fclose: %s", strerror(errno));

	fd = open("numbers.txt", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		zt_fail("open numbers.txt: %s", strerror(errno));
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size)
		zt_fail("read numbers.txt");
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
			zt_fail("line %ld holds %ld (lost, duplicated or reordered output)", expect, v);
		expect++;
		p = nl + 1;
	}
	if (expect - 1 != n)
		zt_fail("file holds 1..%ld but %ld numbers were printed", expect - 1, n);
	if (n <= PRE_READY)
		zt_fail("no number printed after READY");
	zt_pass();
}
