/* file_mmap.c - shared and private mappings of a regular file.
 *
 * Before READY: mapped.dat (1 MiB, pattern A) is mapped MAP_SHARED (rw) and
 * MAP_PRIVATE (rw), and a part of it MAP_SHARED read-only at a non-zero offset;
 * the file descriptor is closed. Pages 3 and 10 are written through the shared
 * mapping (pattern B), pages 5 and 20 through the private one (pattern C).
 * After SIGTERM:
 *   - the shared mapping shows B on pages 3 and 10, A elsewhere;
 *   - the private mapping shows C on pages 5 and 20, B on 3 and 10 (untouched
 *     private pages show the file), A elsewhere;
 *   - read() of the file shows B on 3 and 10 and A on 5 and 20 (private writes
 *     never reach the file);
 *   - a pwrite() to the file now is visible through the shared mapping, the
 *     read-only offset mapping, and untouched pages of the private mapping, but
 *     not through the private pages that were written (they are private copies);
 *   - a write through the shared mapping now reaches the file.
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

#define PG 4096UL
#define FILE_LEN (1024UL * 1024UL)
#define NPAGES (FILE_LEN / PG)
#define OFFMAP_PGOFF 16 /* the offset mapping covers pages 16..47 */
#define OFFMAP_PAGES 32

static inline uint8_t pat(uint32_t seed, size_t off)
{
	uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + (uint64_t)off * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 29;
	return (uint8_t)(x | 1);
}

enum { A = 1, B = 2, C = 3, D = 4, E = 5 };

static void fill_page(uint8_t *p, size_t pg, uint32_t seed)
{
	for (size_t i = 0; i < PG; i++)
		p[i] = pat(seed, pg * PG + i);
}

static void check_page(const char *what, const uint8_t *p, size_t pg, uint32_t seed)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i] != pat(seed, pg * PG + i))
			zt_fail("%s: page %zu byte %zu is 0x%02x, expected pattern %c (0x%02x)", what, pg, i, p[i],
				'A' + (int)seed - 1, pat(seed, pg * PG + i));
}

static uint32_t expect_shared(size_t pg)
{
	return (pg == 3 || pg == 10) ? B : A;
}

static uint32_t expect_private(size_t pg)
{
	if (pg == 5 || pg == 20)
		return C;
	return expect_shared(pg);
}

static uint8_t filebuf[FILE_LEN];

int main(void)
{
	uint8_t *shared, *priv, *offmap;
	struct stat st;
	int fd = open("mapped.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		zt_fail("open(mapped.dat): %s", strerror(errno));
	for (size_t pg = 0; pg < NPAGES; pg++)
		fill_page(filebuf + pg * PG, pg, A);
	if (zt_write_all(fd, filebuf, FILE_LEN) != 0)
		zt_fail("write(mapped.dat): %s", strerror(errno));

	shared = mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	priv = mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	offmap = mmap(NULL, OFFMAP_PAGES * PG, PROT_READ, MAP_SHARED, fd, OFFMAP_PGOFF * PG);
	if (shared == MAP_FAILED || priv == MAP_FAILED || offmap == MAP_FAILED)
		zt_fail("mmap(mapped.dat): %s", strerror(errno));
	close(fd); /* the mappings keep the file; no fd is left */

	/* read every private page once (populates read-only page-cache mappings) */
	for (size_t pg = 0; pg < NPAGES; pg++)
		check_page("private before dump", priv + pg * PG, pg, A);

	fill_page(shared + 3 * PG, 3, B);
	fill_page(shared + 10 * PG, 10, B);
	fill_page(priv + 5 * PG, 5, C);
	fill_page(priv + 20 * PG, 20, C);

	for (size_t pg = 0; pg < NPAGES; pg++) {
		check_page("shared before dump", shared + pg * PG, pg, expect_shared(pg));
		check_page("private before dump", priv + pg * PG, pg, expect_private(pg));
	}

	zt_ready();
	zt_wait_stop();

	for (size_t pg = 0; pg < NPAGES; pg++) {
		check_page("shared mapping", shared + pg * PG, pg, expect_shared(pg));
		check_page("private mapping", priv + pg * PG, pg, expect_private(pg));
	}
	for (size_t pg = 0; pg < OFFMAP_PAGES; pg++)
		check_page("offset mapping", offmap + pg * PG, OFFMAP_PGOFF + pg, expect_shared(OFFMAP_PGOFF + pg));

	fd = open("mapped.dat", O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		zt_fail("reopen mapped.dat: %s", strerror(errno));
	if ((size_t)st.st_size != FILE_LEN)
		zt_fail("mapped.dat size %lld, expected %lu", (long long)st.st_size, FILE_LEN);
	if (pread(fd, filebuf, FILE_LEN, 0) != (ssize_t)FILE_LEN)
		zt_fail("pread(mapped.dat): %s", strerror(errno));
	for (size_t pg = 0; pg < NPAGES; pg++)
		check_page("file content via read()", filebuf + pg * PG, pg, expect_shared(pg));

	/* the mappings are still backed by the file: a write to the file shows up in the
	 * shared mappings and in untouched private pages (page 30 and 40), but not in
	 * privately written pages (page 5) */
	static const size_t dpages[] = { 30, 40, 5 };
	for (size_t i = 0; i < 3; i++) {
		uint8_t page[PG];
		fill_page(page, dpages[i], D);
		if (pwrite(fd, page, PG, (off_t)(dpages[i] * PG)) != (ssize_t)PG)
			zt_fail("pwrite(mapped.dat): %s", strerror(errno));
	}
	check_page("shared mapping after pwrite", shared + 30 * PG, 30, D);
	check_page("offset mapping after pwrite", offmap + (40 - OFFMAP_PGOFF) * PG, 40, D);
	check_page("untouched private page after pwrite", priv + 30 * PG, 30, D);
	check_page("untouched private page after pwrite", priv + 40 * PG, 40, D);
	check_page("written private page after pwrite", priv + 5 * PG, 5, C);
	check_page("shared mapping after pwrite", shared + 5 * PG, 5, D);

	/* a write through the shared mapping reaches the file */
	fill_page(shared + 50 * PG, 50, E);
	if (pread(fd, filebuf, PG, (off_t)(50 * PG)) != (ssize_t)PG)
		zt_fail("pread(mapped.dat) page 50: %s", strerror(errno));
	check_page("file after write through shared mapping", filebuf, 50, E);
	close(fd);
	zt_pass();
}
