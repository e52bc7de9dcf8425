/* unlinked_dir.c - a file open in a directory tree that was removed after the file.
 *
 * dir1/dir2/file is created, written and kept open; then the file, dir2 and dir1 are
 * removed. After SIGTERM the descriptor must still read back what was written, at the same
 * offset, accept more writes, and still be unlinked (st_nlink 0).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char text[] = "written before the dump\n";

int main(void)
{
	if (mkdir("dir1", 0755) || mkdir("dir1/dir2", 0755))
		zt_fail("mkdir: %s", strerror(errno));
	int fd = open("dir1/dir2/file", O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (fd < 0)
		zt_fail("open: %s", strerror(errno));
	if (zt_write_all(fd, text, sizeof text - 1))
		zt_fail("write: %s", strerror(errno));
	if (unlink("dir1/dir2/file") || rmdir("dir1/dir2") || rmdir("dir1"))
		zt_fail("removing the tree: %s", strerror(errno));

	zt_ready();
	zt_wait_stop();

	struct stat st;
	if (fstat(fd, &st) || st.st_nlink != 0)
		zt_fail("the file is no longer unlinked (nlink %lu)", (unsigned long)st.st_nlink);
	if (lseek(fd, 0, SEEK_CUR) != (off_t)(sizeof text - 1))
		zt_fail("offset moved: %lld", (long long)lseek(fd, 0, SEEK_CUR));
	char buf[64] = {0};
	if (pread(fd, buf, sizeof buf, 0) != (ssize_t)(sizeof text - 1) || memcmp(buf, text, sizeof text - 1))
		zt_fail("content changed: '%s'", buf);
	if (write(fd, "more\n", 5) != 5)
		zt_fail("write after restore: %s", strerror(errno));
	zt_pass();
}
