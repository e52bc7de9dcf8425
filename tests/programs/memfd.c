/* memfd.c - memfds keep their name, size, content, seals, offsets and shared mappings.
 *
 * Before READY:
 *   A "zt-memfd-a": 4 MiB + 123 bytes; a pattern in its first 64 KiB, one page of zeros
 *     written at 1 MiB (stored as a hole), the rest never written; sealed against shrinking
 *     and growing; mapped MAP_SHARED read-write (the whole file); fd A kept at offset 777;
 *     a second descriptor A2 opened through /proc/self/fd read-only at offset 5.
 *   B "zt-memfd-b": 64 KiB of another pattern, sealed F_SEAL_WRITE | F_SEAL_SEAL, then mapped
 *     MAP_SHARED read-only; its fd closed (only the mapping holds it).
 *   C "zt-memfd-c": made without MFD_ALLOW_SEALING (its seals read F_SEAL_SEAL), empty.
 * After SIGTERM: names in /proc/self/fd, sizes, offsets, access modes and seals are as
 * before; A's content reads the same through the fd and the mapping, and a write through
 * the mapping shows through A (one memory); shrinking A fails with EPERM; B's mapping has
 * its pattern and its seals; adding a seal to C fails with EPERM.
 * data.img must stay small (the harness checks max_data_bytes): holes and zeros not stored.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define A_SIZE ((4u << 20) + 123)
#define PAT (64u << 10)

static uint8_t pat(unsigned seed, size_t i)
{
	return (uint8_t)(i * 131 + seed * 17 + (i >> 9));
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(seed, i);
}

static long check(const uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(seed, i))
			return (long)i;
	return -1;
}

static void expect_link(int fd, const char *want)
{
	char path[64], buf[256];
	ssize_t n;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		zt_fail("readlink %s: %s", path, strerror(errno));
	buf[n] = 0;
	if (strcmp(buf, want))
		zt_fail("fd %d is %s, expected %s", fd, buf, want);
}

int main(void)
{
	static uint8_t buf[PAT];
	int a = memfd_create("zt-memfd-a", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int b = memfd_create("zt-memfd-b", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int c = memfd_create("zt-memfd-c", MFD_CLOEXEC);
	int a2;
	uint8_t *ma, *mb;
	char path[64];
	long bad;

	if (a < 0 || b < 0 || c < 0)
		zt_fail("memfd_create: %s", strerror(errno));
	if (ftruncate(a, A_SIZE) != 0 || ftruncate(b, PAT) != 0)
		zt_fail("ftruncate: %s", strerror(errno));
	fill(buf, PAT, 1);
	if (pwrite(a, buf, PAT, 0) != PAT)
		zt_fail("pwrite A: %s", strerror(errno));
	memset(buf, 0, 4096);
	if (pwrite(a, buf, 4096, 1 << 20) != 4096)
		zt_fail("pwrite A zeros: %s", strerror(errno));
	if (fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
		zt_fail("seal A: %s", strerror(errno));
	ma = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	if (ma == MAP_FAILED)
		zt_fail("mmap A: %s", strerror(errno));
	if (lseek(a, 777, SEEK_SET) != 777)
		zt_fail("lseek A: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
	a2 = open(path, O_RDONLY | O_CLOEXEC);
	if (a2 < 0 || lseek(a2, 5, SEEK_SET) != 5)
		zt_fail("open A again: %s", strerror(errno));

	fill(buf, PAT, 2);
	if (pwrite(b, buf, PAT, 0) != PAT)
		zt_fail("pwrite B: %s", strerror(errno));
	if (fcntl(b, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) != 0)
		zt_fail("seal B: %s", strerror(errno));
	mb = mmap(NULL, PAT, PROT_READ, MAP_SHARED, b, 0);
	if (mb == MAP_FAILED)
		zt_fail("mmap B: %s", strerror(errno));
	close(b);

	zt_ready();
	zt_wait_stop();

	expect_link(a, "/memfd:zt-memfd-a (deleted)");
	expect_link(a2, "/memfd:zt-memfd-a (deleted)");
	expect_link(c, "/memfd:zt-memfd-c (deleted)");
	if (lseek(a, 0, SEEK_CUR) != 777 || lseek(a2, 0, SEEK_CUR) != 5)
		zt_fail("offsets are %lld and %lld, expected 777 and 5", (long long)lseek(a, 0, SEEK_CUR),
			(long long)lseek(a2, 0, SEEK_CUR));
	if ((fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(a2, F_GETFL) & O_ACCMODE) != O_RDONLY)
		zt_fail("access modes changed");
	if (lseek(a, 0, SEEK_END) != A_SIZE || lseek(a, 777, SEEK_SET) != 777)
		zt_fail("A's size is %lld", (long long)lseek(a, 0, SEEK_END));
	if (fcntl(a, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		zt_fail("A's seals are %#x", fcntl(a, F_GET_SEALS));
	if (fcntl(c, F_GET_SEALS) != F_SEAL_SEAL || fcntl(c, F_ADD_SEALS, F_SEAL_WRITE) != -1 || errno != EPERM)
		zt_fail("C can be sealed, or lost its F_SEAL_SEAL (seals %#x)", fcntl(c, F_GET_SEALS));
	if ((bad = check(ma, PAT, 1)) >= 0)
		zt_fail("A's mapping differs at %ld", bad);
	if (pread(a, buf, PAT, 0) != PAT || (bad = check(buf, PAT, 1)) >= 0)
		zt_fail("A read through its fd differs at %ld", bad);
	for (size_t i = PAT; i < A_SIZE; i += 4096)
		if (ma[i])
			zt_fail("A is not zero at %zu", i);
	ma[A_SIZE - 1] = 0x5a;
	if (pread(a2, buf, 1, A_SIZE - 1) != 1 || buf[0] != 0x5a)
		zt_fail("a write through A's mapping does not show through A2: not the same memory");
	if (ftruncate(a, 4096) != -1 || errno != EPERM)
		zt_fail("A could be shrunk: its seals do not hold");
	if ((bad = check(mb, PAT, 2)) >= 0)
		zt_fail("B's mapping differs at %ld", bad);
	{
		uintptr_t s, e;
		char perms[5];
		int fd;
		if (zt_maps_lookup(mb, &s, &e, perms) != 0)
			zt_fail("B's mapping is gone");
		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)s, (unsigned long)e);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			zt_fail("open %s: %s", path, strerror(errno));
		expect_link(fd, "/memfd:zt-memfd-b (deleted)");
		if (fcntl(fd, F_GET_SEALS) != (F_SEAL_WRITE | F_SEAL_SEAL))
			zt_fail("B's seals are %#x", fcntl(fd, F_GET_SEALS));
		close(fd);
	}
	zt_pass();
}
