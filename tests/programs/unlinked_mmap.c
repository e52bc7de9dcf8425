/* unlinked_mmap.c - mappings of deleted files.
 *
 * Before READY:
 *   m.dat (3 pages): fd M (O_RDWR) and two MAP_SHARED read-write mappings of it (S1 whole
 *     file, S2 the last two pages), a write through S1; then m.dat is removed: an fd and
 *     mappings on one deleted inode;
 *   p.dat (2 pages): MAP_PRIVATE read-only, fd closed, removed: only a mapping holds it;
 *   w.dat (2 pages, then a 1 MiB hole, then 1 page): MAP_SHARED read-write, fd closed,
 *     removed, written through the mapping afterwards (dirty shared pages) - mapping only;
 *   c.dat (1 page): MAP_PRIVATE read-write, fd closed, removed, one byte written (a private
 *     copy of a file page).
 * After SIGTERM the contents are as written, M, S1 and S2 are one inode (writes through
 * each are seen through the others), /proc/self/maps still shows the mappings as
 * "(deleted)", and no name came back.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG 4096

static uint8_t pat(int seed, size_t off)
{
	return (uint8_t)(seed * 29 + off * 13 + (off >> 9));
}

static int make(const char *name, int seed, size_t len)
{
	uint8_t buf[PG];
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0640);

	if (fd < 0)
		zt_fail("create %s: %s", name, strerror(errno));
	for (size_t off = 0; off < len; off += PG) {
		for (size_t i = 0; i < PG; i++)
			buf[i] = pat(seed, off + i);
		if (pwrite(fd, buf, PG, (off_t)off) != PG)
			zt_fail("write %s: %s", name, strerror(errno));
	}
	return fd;
}

static void *xmap(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	return p;
}

static void check(const char *what, const uint8_t *p, int seed, size_t base, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(seed, base + i))
			zt_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, base + i, p[i], pat(seed, base + i));
}

static int maps_deleted(const void *addr, const char *name)
{
	char line[512], want[64];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	snprintf(want, sizeof(want), "/%s (deleted)", name);
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && (uintptr_t)addr >= s && (uintptr_t)addr < e)
			found = strstr(line, want) != NULL;
	}
	if (f)
		fclose(f);
	return found;
}

int main(void)
{
	uint8_t buf[PG];
	struct stat st;
	int m = make("m.dat", 1, 3 * PG);
	uint8_t *s1 = xmap(3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	uint8_t *s2 = xmap(2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, m, PG);
	memcpy(s1 + 100, "through S1", 10);

	int p = make("p.dat", 2, 2 * PG);
	uint8_t *pm = xmap(2 * PG, PROT_READ, MAP_PRIVATE, p, 0);
	close(p);

	int w = make("w.dat", 3, 2 * PG);
	if (pwrite(w, "tail", 4, 2 * PG + (1 << 20)) != 4)
		zt_fail("write w.dat tail");
	const size_t wlen = 2 * PG + (1 << 20) + PG;
	uint8_t *wm = xmap(wlen, PROT_READ | PROT_WRITE, MAP_SHARED, w, 0);
	close(w);

	int c = make("c.dat", 4, PG);
	uint8_t *cm = xmap(PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, c, 0);
	close(c);

	if (unlink("m.dat") || unlink("p.dat") || unlink("w.dat") || unlink("c.dat"))
		zt_fail("unlink: %s", strerror(errno));
	memcpy(wm + 5, "dirty", 5);
	cm[7] = 'C';

	zt_ready();
	zt_wait_stop();

	if (access("m.dat", F_OK) == 0 || access("p.dat", F_OK) == 0 || access("w.dat", F_OK) == 0 ||
	    access("c.dat", F_OK) == 0)
		zt_fail("a removed name exists again");
	if (fstat(m, &st) != 0 || st.st_nlink != 0 || st.st_size != 3 * PG || (st.st_mode & 07777) != 0640)
		zt_fail("M: nlink %lu size %lld mode %o", (unsigned long)st.st_nlink, (long long)st.st_size,
			(unsigned)st.st_mode & 07777);
	if (!maps_deleted(s1, "m.dat") || !maps_deleted(s2, "m.dat") || !maps_deleted(pm, "p.dat") ||
	    !maps_deleted(wm, "w.dat") || !maps_deleted(cm, "c.dat"))
		zt_fail("a mapping is not shown as its deleted file in /proc/self/maps");

	/* m.dat: content, and M, S1, S2 are one file */
	if (memcmp(s1 + 100, "through S1", 10) != 0)
		zt_fail("S1 lost the write made through it");
	check("S1", s1, 1, 0, 100);
	check("S1", s1 + 110, 1, 110, 3 * PG - 110);
	if (pread(m, buf, 10, 100) != 10 || memcmp(buf, "through S1", 10) != 0)
		zt_fail("the write through S1 is not in the file of M");
	memcpy(s2 + 8, "via S2", 6); /* file offset PG + 8 */
	if (memcmp(s1 + PG + 8, "via S2", 6) != 0)
		zt_fail("a write through S2 is not seen through S1: two inodes");
	if (pread(m, buf, 6, PG + 8) != 6 || memcmp(buf, "via S2", 6) != 0)
		zt_fail("a write through S2 is not seen through M");
	if (pwrite(m, "by M", 4, 2 * PG) != 4 || memcmp(s2 + PG, "by M", 4) != 0 || memcmp(s1 + 2 * PG, "by M", 4) != 0)
		zt_fail("a write through M is not seen in the mappings");

	/* p.dat: private read-only, mapping only */
	check("p.dat mapping", pm, 2, 0, 2 * PG);

	/* w.dat: shared, mapping only, dirty page and the page after a hole */
	if (memcmp(wm + 5, "dirty", 5) != 0)
		zt_fail("w.dat lost the write through the mapping");
	check("w.dat mapping", wm + 10, 3, 10, 2 * PG - 10);
	for (size_t i = 2 * PG; i < 2 * PG + (1 << 20); i += 511)
		if (wm[i] != 0)
			zt_fail("w.dat hole byte %zu is 0x%02x", i, wm[i]);
	if (memcmp(wm + 2 * PG + (1 << 20), "tail", 4) != 0)
		zt_fail("w.dat page after the hole lost its content");
	memcpy(wm + 2 * PG + 16, "new", 3); /* writable still, in the former hole */

	/* c.dat: the private copy keeps its byte, the rest is the file's */
	if (cm[7] != 'C')
		zt_fail("c.dat private write lost");
	check("c.dat", cm, 4, 0, 7);
	check("c.dat", cm + 8, 4, 8, PG - 8);
	zt_pass();
}
