/* changed_file.c - a program with a log file open for appending, the subject of
 * tests/changed_files.py (files changed between dump and restore).
 *
 * Before READY it writes 1234 bytes to log.dat (O_WRONLY|O_APPEND) and keeps it open
 * (offset 1234); data.dat (4096 bytes) stays open O_RDONLY at offset 4000. After SIGTERM
 * it appends "end\n" to log.dat and checks that it went to the end of the file as it is
 * now (a restore that was told to accept a truncated log.dat continues with what is
 * there), and that data.dat still reads back. In the normal zdtm modes nothing changes
 * the files, so log.dat must then be exactly 1238 bytes.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
	char buf[4096];
	struct stat st;
	int log = open("log.dat", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
	int data = open("data.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (log < 0 || data < 0)
		zt_fail("open: %s", strerror(errno));
	memset(buf, 'L', sizeof(buf));
	if (zt_write_all(log, buf, 1234) != 0)
		zt_fail("write log.dat");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)('a' + i % 26);
	if (zt_write_all(data, buf, sizeof(buf)) != 0 || lseek(data, 4000, SEEK_SET) != 4000)
		zt_fail("write data.dat");

	zt_ready();
	zt_wait_stop();

	struct stat before;
	if (fstat(log, &before) != 0)
		zt_fail("fstat log.dat: %s", strerror(errno));
	if (write(log, "end\n", 4) != 4)
		zt_fail("append to log.dat: %s", strerror(errno));
	if (fstat(log, &st) != 0 || st.st_size != before.st_size + 4 || lseek(log, 0, SEEK_CUR) != st.st_size)
		zt_fail("the append did not go to the end (size %lld, offset %lld)", (long long)st.st_size,
			(long long)lseek(log, 0, SEEK_CUR));
	if (getenv("ZT_FILES_CHANGED") == NULL && st.st_size != 1238)
		zt_fail("log.dat is %lld bytes, expected 1238", (long long)st.st_size);
	zt_info("log.dat is %lld bytes", (long long)st.st_size);
	if (lseek(data, 0, SEEK_CUR) != 4000 || pread(data, buf, 26, 0) != 26 || memcmp(buf, "abcdefghijklmnopqrstuvwxyz", 26))
		zt_fail("data.dat offset or content wrong");
	zt_pass();
}
