/* mmap_shared_ro.c - read-only shared file mappings keep the access their file was opened
 * with.
 *
 * Before READY: rw.dat is opened O_RDWR and mapped MAP_SHARED, PROT_READ; ro.dat is opened
 * O_RDONLY and mapped the same way; both descriptors are closed, so only the mappings know
 * how the files were opened (VM_MAYWRITE, "mw" in smaps).
 * After SIGTERM: the rw.dat mapping can be made writable with mprotect and a write through
 * it reaches the file; the ro.dat mapping still refuses PROT_WRITE (EACCES); both still
 * show the content written before the dump.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEN (2 * 4096)

static char *map_file(const char *name, int flags, char fill)
{
	char buf[LEN];
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char *p;

	memset(buf, fill, sizeof(buf));
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		zt_fail("cannot create %s: %s", name, strerror(errno));
	close(fd);
	fd = open(name, flags | O_CLOEXEC);
	if (fd < 0)
		zt_fail("open(%s): %s", name, strerror(errno));
	p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		zt_fail("mmap(%s): %s", name, strerror(errno));
	close(fd);
	return p;
}

static void check_fill(const char *name, const char *p, char fill)
{
	for (int i = 0; i < LEN; i++)
		if (p[i] != fill)
			zt_fail("%s mapping byte %d is %#x, expected %#x", name, i, p[i], fill);
}

int main(void)
{
	char *rw = map_file("rw.dat", O_RDWR, 'w');
	char *ro = map_file("ro.dat", O_RDONLY, 'r');
	char back[16];
	int fd;

	/* the way it must behave, checked once before the dump on a scratch mapping */
	if (mprotect(ro, LEN, PROT_READ | PROT_WRITE) == 0 || errno != EACCES)
		zt_fail("mprotect(PROT_WRITE) of the O_RDONLY mapping: expected EACCES");

	zt_ready();
	zt_wait_stop();

	check_fill("rw.dat", rw, 'w');
	check_fill("ro.dat", ro, 'r');
	if (mprotect(rw, LEN, PROT_READ | PROT_WRITE) != 0)
		zt_fail("mprotect(PROT_WRITE) of the shared mapping of a file opened O_RDWR: %s", strerror(errno));
	memcpy(rw + 4096, "written", 8);
	if (msync(rw, LEN, MS_SYNC) != 0)
		zt_fail("msync: %s", strerror(errno));
	fd = open("rw.dat", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, back, 8, 4096) != 8)
		zt_fail("cannot read rw.dat back: %s", strerror(errno));
	close(fd);
	if (memcmp(back, "written", 8) != 0)
		zt_fail("the write through the mapping did not reach rw.dat");
	if (mprotect(ro, LEN, PROT_READ | PROT_WRITE) == 0)
		zt_fail("the mapping of a file opened O_RDONLY became writable");
	if (errno != EACCES)
		zt_fail("mprotect(PROT_WRITE) of the O_RDONLY mapping: %s, expected EACCES", strerror(errno));
	zt_pass();
}
