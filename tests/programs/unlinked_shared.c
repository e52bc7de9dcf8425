/* unlinked_shared.c - descriptors on one deleted file stay on one file.
 *
 * Before READY:
 *   a.dat (10000 bytes) gets a second name b.dat; fd A = open("a.dat", O_RDWR) at
 *   offset 100, fd B = open("b.dat", O_RDONLY) at offset 200 (two open file
 *   descriptions, one inode), then both names are removed;
 *   c.dat (3000 bytes), fd C = open O_RDWR, removed: another deleted file;
 *   d.dat with a second name e.dat; fd D = open("d.dat", O_RDWR) at offset 5, then only
 *   d.dat is removed (the inode keeps a link, /proc still shows "d.dat (deleted)").
 * After SIGTERM: A and B are one inode (a write through A is read through B, each keeps
 * its own offset), C is a different inode with its own content, D has its content and
 * works, and no name came back.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t pat(int seed, size_t off)
{
	return (uint8_t)(seed * 31 + off * 7 + (off >> 8));
}

static void make(const char *name, int seed, size_t len)
{
	uint8_t buf[10000];
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		zt_fail("create %s: %s", name, strerror(errno));
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(seed, i);
	if (zt_write_all(fd, buf, len) != 0)
		zt_fail("write %s", name);
	close(fd);
}

static int xopen(const char *name, int flags, off_t off)
{
	int fd = open(name, flags);
	if (fd < 0 || lseek(fd, off, SEEK_SET) != off)
		zt_fail("open %s: %s", name, strerror(errno));
	return fd;
}

static void check(const char *what, int fd, int seed, size_t len)
{
	uint8_t buf[10000];
	struct stat st;

	if (fstat(fd, &st) != 0 || (size_t)st.st_size != len)
		zt_fail("%s: size %lld, expected %zu", what, (long long)st.st_size, len);
	if (pread(fd, buf, len, 0) != (ssize_t)len)
		zt_fail("%s: pread: %s", what, strerror(errno));
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(seed, i))
			zt_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, buf[i], pat(seed, i));
}

static ino_t ino_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		zt_fail("fstat fd %d: %s", fd, strerror(errno));
	return st.st_ino;
}

int main(void)
{
	char buf[16];
	struct stat st;

	make("a.dat", 1, 10000);
	if (link("a.dat", "b.dat") != 0)
		zt_fail("link: %s", strerror(errno));
	int a = xopen("a.dat", O_RDWR, 100), b = xopen("b.dat", O_RDONLY, 200);
	make("c.dat", 2, 3000);
	int c = xopen("c.dat", O_RDWR, 0);
	make("d.dat", 3, 4000);
	if (link("d.dat", "e.dat") != 0)
		zt_fail("link: %s", strerror(errno));
	int d = xopen("d.dat", O_RDWR, 5);
	if (unlink("a.dat") || unlink("b.dat") || unlink("c.dat") || unlink("d.dat"))
		zt_fail("unlink: %s", strerror(errno));
	if (ino_of(a) != ino_of(b) || ino_of(a) == ino_of(c))
		zt_fail("setup: inodes not as intended");
	if (fstat(d, &st) != 0 || st.st_nlink != 1)
		zt_fail("setup: d.dat should keep one link");

	zt_ready();
	zt_wait_stop();

	if (access("a.dat", F_OK) == 0 || access("b.dat", F_OK) == 0 || access("c.dat", F_OK) == 0 ||
	    access("d.dat", F_OK) == 0)
		zt_fail("a removed name exists again");
	if (fstat(a, &st) != 0 || st.st_nlink != 0)
		zt_fail("A: nlink %lu, expected 0", (unsigned long)st.st_nlink);
	if (ino_of(a) != ino_of(b))
		zt_fail("A and B are two inodes now (%lu, %lu): they were one", (unsigned long)ino_of(a),
			(unsigned long)ino_of(b));
	if (ino_of(a) == ino_of(c))
		zt_fail("C shares the inode of A");
	check("A", a, 1, 10000);
	check("B", b, 1, 10000);
	check("C", c, 2, 3000);
	check("D", d, 3, 4000);
	if (lseek(a, 0, SEEK_CUR) != 100 || lseek(b, 0, SEEK_CUR) != 200 || lseek(d, 0, SEEK_CUR) != 5)
		zt_fail("offsets: A %lld B %lld D %lld, expected 100 200 5", (long long)lseek(a, 0, SEEK_CUR),
			(long long)lseek(b, 0, SEEK_CUR), (long long)lseek(d, 0, SEEK_CUR));
	if ((fcntl(b, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR)
		zt_fail("access modes changed");
	/* one inode: written through A, read through B; B's offset unaffected */
	if (write(a, "shared!", 7) != 7)
		zt_fail("write A: %s", strerror(errno));
	if (pread(b, buf, 7, 100) != 7 || memcmp(buf, "shared!", 7) != 0)
		zt_fail("a write through A is not seen through B");
	if (lseek(b, 0, SEEK_CUR) != 200 || lseek(a, 0, SEEK_CUR) != 107)
		zt_fail("A and B share an offset: they were two open files");
	if (pread(c, buf, 7, 100) != 7 || memcmp(buf, "shared!", 7) == 0)
		zt_fail("the write through A shows in C");
	if (write(d, "dd", 2) != 2 || pread(d, buf, 2, 5) != 2 || memcmp(buf, "dd", 2) != 0)
		zt_fail("write+read back on D failed");
	zt_pass();
}
