/* reservation.c - terabyte address-space reservations, as JVMs, Go, sanitizers and
 * databases make them.
 *
 * Two 2 TiB MAP_NORESERVE regions: one PROT_NONE with its first MiB made read-write and
 * filled (a heap growing inside its reservation), one read-write with a few scattered
 * pages touched. Both must come back (same bounds and protections) with their data, and a
 * dump must not have to read them page by page (a test of speed left to tools/: here the
 * harness's timeouts only bound it).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define TIB (1ull << 40)
#define MIB (1ull << 20)

int main(void)
{
	char *heap = mmap(NULL, 2 * TIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *arena = mmap(NULL, 2 * TIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (heap == MAP_FAILED || arena == MAP_FAILED)
		zt_fail("mmap of 2 TiB: %s", strerror(errno));
	if (mprotect(heap, MIB, PROT_READ | PROT_WRITE))
		zt_fail("mprotect: %s", strerror(errno));
	for (uint64_t i = 0; i < MIB; i++)
		heap[i] = (char)(i * 7 + 1);
	static const uint64_t spots[] = {0, 12345678, 1ull << 35, TIB + 4096 * 3, 2 * TIB - 4096};
	for (size_t k = 0; k < sizeof spots / sizeof spots[0]; k++)
		arena[spots[k]] = (char)(k + 42);

	zt_ready();
	zt_wait_stop();

	uintptr_t start, end;
	char perms[5];
	if (zt_maps_lookup(heap + MIB, &start, &end, perms) || (char *)start != heap + MIB ||
	    end - start != 2 * TIB - MIB || strcmp(perms, "---p"))
		zt_fail("the PROT_NONE reservation is not as it was");
	/* (the arena may share one VMA with the heap's writable start, right above it) */
	if (zt_maps_lookup(arena, &start, &end, perms) || (char *)start > arena || (char *)end < arena + 2 * TIB ||
	    strcmp(perms, "rw-p"))
		zt_fail("the read-write reservation is not as it was");
	for (uint64_t i = 0; i < MIB; i++)
		if (heap[i] != (char)(i * 7 + 1))
			zt_fail("heap byte %llu changed", (unsigned long long)i);
	for (size_t k = 0; k < sizeof spots / sizeof spots[0]; k++)
		if (arena[spots[k]] != (char)(k + 42))
			zt_fail("arena byte at %llu changed", (unsigned long long)spots[k]);
	zt_pass();
}
