/* heap_mmap.c - heap and anonymous memory of every common kind.
 *
 * Before READY it sets up:
 *   - malloc'd blocks of varied sizes (tiny .. 64 MiB, some below and some above
 *     the mmap threshold), with a few blocks freed in between, each with its own pattern;
 *   - patterns in .data, .bss and on the stack;
 *   - an anonymous private mapping with a pattern, partly left untouched;
 *   - a MAP_SHARED|MAP_ANONYMOUS region with a pattern;
 *   - a region filled with a pattern and then mprotect'ed PROT_READ;
 *   - a PROT_NONE guard region;
 *   - a region written non-zero and then zeroed again ("written zero pages");
 *   - a mapping with a hole punched in the middle (munmap).
 * After SIGTERM every pattern is verified, the prot bits of every region are
 * checked in /proc/self/maps, the guard and the read-only region must fault on
 * access, brk must be where it was, and the allocator must still work.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL
#define MiB (1024UL * 1024UL)

static inline uint8_t pat(uint32_t seed, size_t off)
{
	uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + (uint64_t)off * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 29;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 32;
	return (uint8_t)(x | 1); /* never 0, so a zero page is always a mismatch */
}

static void fill(void *p, size_t len, uint32_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		b[i] = pat(seed, i);
}

static void check(const char *what, const void *p, size_t len, uint32_t seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i] != pat(seed, i))
			zt_fail("%s: byte %zu of %zu is 0x%02x, expected 0x%02x", what, i, len, b[i], pat(seed, i));
}

static void check_zero(const char *what, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i])
			zt_fail("%s: byte %zu of %zu is 0x%02x, expected 0", what, i, len, b[i]);
}

/* the maps entry containing [p, p+len) must have the given perms and cover the whole range */
static void check_prot(const char *what, const void *p, size_t len, const char *perms)
{
	uintptr_t s, e;
	char got[5];

	for (size_t off = 0; off < len; off += PG) {
		if (zt_maps_lookup((const char *)p + off, &s, &e, got) != 0)
			zt_fail("%s: no mapping at %p in /proc/self/maps", what, (const void *)((const char *)p + off));
		if (strcmp(got, perms) != 0)
			zt_fail("%s: perms at +%zu are '%s', expected '%s'", what, off, got, perms);
	}
}

static void check_unmapped(const char *what, const void *p)
{
	uintptr_t s, e;
	char got[5];

	if (zt_maps_lookup(p, &s, &e, got) == 0)
		zt_fail("%s: %p is mapped (%lx-%lx %s), expected a hole", what, p, (unsigned long)s,
			(unsigned long)e, got);
}

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t faults;

static void segv_handler(int sig)
{
	(void)sig;
	faults++;
	siglongjmp(fault_jmp, 1);
}

/* returns 1 if reading (write=0) or writing (write=1) *p faults */
static int faults_on(volatile uint8_t *p, int write)
{
	struct sigaction sa, old;
	int faulted;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = segv_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(fault_jmp, 1) == 0) {
		if (write)
			*p = 0x5a;
		else
			(void)*p;
		faulted = 0;
	} else {
		faulted = 1;
	}
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

/* .data and .bss patterns */
static uint8_t data_arr[3 * PG + 123] = { 1 };
static uint8_t bss_arr[5 * PG + 77];

static const size_t block_sizes[] = {
	1, 7, 16, 24, 100, 1000, 4000, 4096, 5000, 40000, 70000, 131071,
	200000, 1000000, 3 * MiB + 17, 64 * MiB + 4096 + 5, 33, 2049,
};
#define NBLOCKS (sizeof(block_sizes) / sizeof(block_sizes[0]))

int main(void)
{
	uint8_t *blocks[NBLOCKS];
	void *freed[NBLOCKS];
	uint8_t stack_arr[20000];
	void *brk0;

	/* heap blocks; free every third one after allocating the next, leaving holes */
	for (size_t i = 0; i < NBLOCKS; i++) {
		freed[i] = NULL;
		blocks[i] = malloc(block_sizes[i]);
		if (!blocks[i])
			zt_fail("malloc(%zu): %s", block_sizes[i], strerror(errno));
		fill(blocks[i], block_sizes[i], 100 + (uint32_t)i);
		if (i % 3 == 0) {
			freed[i] = malloc(block_sizes[i] < 100000 ? block_sizes[i] : 100);
			if (!freed[i])
				zt_fail("malloc for hole");
		}
	}
	for (size_t i = 0; i < NBLOCKS; i++)
		free(freed[i]);

	fill(data_arr, sizeof(data_arr), 1);
	fill(bss_arr, sizeof(bss_arr), 2);
	fill(stack_arr, sizeof(stack_arr), 3);

	/* anonymous private: 64 pages, only even pages touched, odd pages never touched */
	const size_t anon_len = 64 * PG;
	uint8_t *anon = mmap(NULL, anon_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* anonymous private, fully written */
	const size_t anon2_len = 3 * MiB + 5 * PG;
	uint8_t *anon2 = mmap(NULL, anon2_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* shared anonymous */
	const size_t shm_len = 40 * PG;
	uint8_t *shm = mmap(NULL, shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* read-only after filling */
	const size_t ro_len = 9 * PG;
	uint8_t *ro = mmap(NULL, ro_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* PROT_NONE guard */
	const size_t guard_len = 4 * PG;
	uint8_t *guard = mmap(NULL, guard_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* written zero pages */
	const size_t zero_len = 16 * PG;
	uint8_t *zero = mmap(NULL, zero_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* hole in the middle */
	const size_t holey_len = 5 * PG;
	uint8_t *holey = mmap(NULL, holey_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (anon == MAP_FAILED || anon2 == MAP_FAILED || shm == MAP_FAILED || ro == MAP_FAILED ||
	    guard == MAP_FAILED || zero == MAP_FAILED || holey == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));

	for (size_t pg = 0; pg < anon_len / PG; pg += 2)
		fill(anon + pg * PG, PG, 1000 + (uint32_t)pg);
	fill(anon2, anon2_len, 4);
	fill(shm, shm_len, 5);
	fill(ro, ro_len, 6);
	if (mprotect(ro, ro_len, PROT_READ) != 0)
		zt_fail("mprotect(ro): %s", strerror(errno));
	memset(zero, 0xee, zero_len);
	memset(zero, 0, zero_len);
	fill(holey, holey_len, 7);
	if (munmap(holey + 2 * PG, PG) != 0)
		zt_fail("munmap(hole): %s", strerror(errno));

	/* make sure the setup is what we think it is before READY */
	check_prot("shared", shm, shm_len, "rw-s");
	check_prot("ro", ro, ro_len, "r--p");
	check_prot("guard", guard, guard_len, "---p");
	check_prot("anon", anon, anon_len, "rw-p");
	check_unmapped("holey", holey + 2 * PG);
	brk0 = sbrk(0);

	ZT_ESCAPE(stack_arr);
	ZT_ESCAPE(data_arr);
	ZT_ESCAPE(bss_arr);
	ZT_ESCAPE(blocks);
	zt_ready();
	zt_wait_stop();
	ZT_ESCAPE(stack_arr);

	/* heap */
	for (size_t i = 0; i < NBLOCKS; i++) {
		char what[64];
		snprintf(what, sizeof(what), "malloc block %zu (%zu bytes)", i, block_sizes[i]);
		check(what, blocks[i], block_sizes[i], 100 + (uint32_t)i);
	}
	if (sbrk(0) != brk0)
		zt_fail("program break moved: %p -> %p", brk0, sbrk(0));
	check(".data", data_arr, sizeof(data_arr), 1);
	check(".bss", bss_arr, sizeof(bss_arr), 2);
	check("stack", stack_arr, sizeof(stack_arr), 3);

	/* anonymous mappings */
	for (size_t pg = 0; pg < anon_len / PG; pg++) {
		char what[64];
		snprintf(what, sizeof(what), "anon page %zu", pg);
		if (pg % 2 == 0)
			check(what, anon + pg * PG, PG, 1000 + (uint32_t)pg);
		else
			check_zero(what, anon + pg * PG, PG);
	}
	check("anon2", anon2, anon2_len, 4);
	check("shared anon", shm, shm_len, 5);
	check("read-only", ro, ro_len, 6);
	check_zero("zeroed", zero, zero_len);
	check("holey head", holey, 2 * PG, 7);
	/* fill() pattern continues across the hole: check the tail at its original offsets */
	for (size_t i = 3 * PG; i < holey_len; i++)
		if (holey[i] != pat(7, i))
			zt_fail("holey tail byte %zu differs", i);

	/* prot bits as set */
	check_prot("anon", anon, anon_len, "rw-p");
	check_prot("anon2", anon2, anon2_len, "rw-p");
	check_prot("shared anon", shm, shm_len, "rw-s");
	check_prot("read-only", ro, ro_len, "r--p");
	check_prot("guard", guard, guard_len, "---p");
	check_prot("zeroed", zero, zero_len, "rw-p");
	check_prot("holey head", holey, 2 * PG, "rw-p");
	check_prot("holey tail", holey + 3 * PG, 2 * PG, "rw-p");
	check_unmapped("holey", holey + 2 * PG);

	/* and the prot bits are really enforced */
	if (!faults_on(guard + PG, 0))
		zt_fail("reading the PROT_NONE guard did not fault");
	if (!faults_on(ro + 2 * PG, 1))
		zt_fail("writing the PROT_READ region did not fault");
	if (faults_on(ro + 2 * PG, 0))
		zt_fail("reading the PROT_READ region faulted");
	if (faults != 2)
		zt_fail("expected 2 faults, got %d", (int)faults);

	/* the shared region is still writable and shared with a child */
	{
		shm[0] = 0;
		pid_t pid = fork();
		if (pid == 0) {
			shm[0] = 0x77;
			_exit(0);
		}
		if (pid < 0)
			zt_fail("fork: %s", strerror(errno));
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (shm[0] != 0x77)
			zt_fail("MAP_SHARED anonymous region is not shared with a child after restore");
	}

	/* the allocator still works: free everything, allocate again */
	for (size_t i = 0; i < NBLOCKS; i++)
		free(blocks[i]);
	for (size_t i = 0; i < 200; i++) {
		void *p = malloc(i * 997 + 1);
		if (!p)
			zt_fail("malloc after restore");
		memset(p, 0xab, i * 997 + 1);
		free(p);
	}
	zt_pass();
}
