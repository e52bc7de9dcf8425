/* bigbuf.c - a big (default 1 GiB) anonymous buffer of pseudo-random bytes.
 *
 * argv[1] (optional): size in MiB, default 1024.
 * Before READY the buffer is filled from splitmix64, 8 bytes at a time, and a
 * position-sensitive 64-bit checksum of it is computed. After SIGTERM the
 * checksum is recomputed from memory and compared, and the buffer is compared
 * word by word against the regenerated stream (reporting the first bad offset).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t checksum(const uint64_t *w, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
		h = (h << 7) | (h >> 57);
	}
	return h;
}

#define SEED 0x0123456789abcdefULL

int main(int argc, char **argv)
{
	size_t mib = 1024;
	size_t len, nwords;
	uint64_t *buf, sum_before, sum_after, s;

	if (argc > 1) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(argv[1], &end, 10);
		if (errno || *end || v == 0 || v > 1024 * 1024)
			zt_fail("bad size argument '%s' (MiB)", argv[1]);
		mib = v;
	}
	len = mib << 20;
	nwords = len / 8;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		zt_fail("mmap(%zu MiB): %s", mib, strerror(errno));
	(void)madvise(buf, len, MADV_HUGEPAGE); /* best effort: only for speed */

	s = SEED;
	for (size_t i = 0; i < nwords; i++)
		buf[i] = splitmix64(&s);
	sum_before = checksum(buf, nwords);

	zt_ready();
	zt_wait_stop();

	sum_after = checksum(buf, nwords);
	s = SEED;
	for (size_t i = 0; i < nwords; i++) {
		uint64_t want = splitmix64(&s);
		if (buf[i] != want)
			zt_fail("word at byte offset %zu (page %zu) is %016llx, expected %016llx", i * 8,
				i * 8 / 4096, (unsigned long long)buf[i], (unsigned long long)want);
	}
	if (sum_after != sum_before)
		zt_fail("checksum %016llx != %016llx before the dump", (unsigned long long)sum_after,
			(unsigned long long)sum_before);
	zt_pass();
}
