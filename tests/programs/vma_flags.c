/* vma_flags.c - VMA flags that madvise, mlock and mmap flags set.
 *
 * Before READY: one anonymous region cut into adjacent 2-page slices, each with one
 * property (MADV_DONTFORK "dc", MADV_WIPEONFORK "wf", MADV_DONTDUMP "dd", MADV_HUGEPAGE
 * "hg", MADV_NOHUGEPAGE "nh", MADV_MERGEABLE "mg", MADV_SEQUENTIAL "sr", MADV_RANDOM "rr",
 * mlock "lo", mlock2(MLOCK_ONFAULT) "lo lf", MAP_NORESERVE "nr" between two plain slices),
 * each filled with its own byte, and two never-touched slices made PROT_NONE and PROT_READ
 * after being writable (still accounted as writable memory, "ac"); plus a 64 GiB writable MAP_NORESERVE mapping with a few
 * pages written (more than this machine's memory: without MAP_NORESERVE it cannot be mapped
 * under the default overcommit heuristic) and a 64 GiB PROT_NONE MAP_NORESERVE reservation.
 * Each slice is its own VMA only because of its flag: a restore that drops a flag merges
 * it with a neighbour.
 * After SIGTERM: every one of these VMAs has the same bounds and exactly the same VmFlags
 * in /proc/self/smaps as before the dump, and the data is intact.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define SLICE (2 * PAGE)
#define BIG (64UL << 30)

enum { ADVISE, LOCK, LOCK_ONFAULT, NORESERVE, WAS_WRITABLE, PLAIN };

static const struct {
	const char *flag; /* what smaps must show ("" for the plain slices) */
	int how, advice;
} slices[] = {
	{ "dc", ADVISE, MADV_DONTFORK },   { "wf", ADVISE, MADV_WIPEONFORK }, { "dd", ADVISE, MADV_DONTDUMP },
	{ "hg", ADVISE, MADV_HUGEPAGE },   { "nh", ADVISE, MADV_NOHUGEPAGE }, { "mg", ADVISE, MADV_MERGEABLE },
	{ "sr", ADVISE, MADV_SEQUENTIAL }, { "rr", ADVISE, MADV_RANDOM },     { "lo", LOCK, 0 },
	{ "lf", LOCK_ONFAULT, 0 },         { "", PLAIN, 0 },                  { "nr", NORESERVE, 0 },
	{ "", PLAIN, 0 },                  { "ac", WAS_WRITABLE, PROT_NONE }, { "", PLAIN, 0 },
	{ "ac", WAS_WRITABLE, PROT_READ },
};
#define NSLICES (sizeof(slices) / sizeof(slices[0]))

struct vma {
	uintptr_t start, end;
	char flags[160];
};

static char smaps[4 << 20];

/* The VMA of /proc/self/smaps that starts at addr. 0 if there is none. */
static int find_vma(uintptr_t addr, struct vma *out)
{
	long n = zt_read_file("/proc/self/smaps", smaps, sizeof(smaps) - 1);
	char *line, *save = NULL;
	int found = 0;

	if (n <= 0)
		zt_fail("cannot read /proc/self/smaps: %s", strerror(errno));
	smaps[n] = '\0';
	for (line = strtok_r(smaps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long s, e;
		char c;

		if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3) {
			if (found)
				break; /* the VMA had no VmFlags line */
			if (s == addr) {
				found = 1;
				out->start = s;
				out->end = e;
				out->flags[0] = '\0';
			}
		} else if (found && strncmp(line, "VmFlags:", 8) == 0) {
			const char *f = line + 8;
			while (*f == ' ')
				f++;
			snprintf(out->flags, sizeof(out->flags), "%s", f);
			return 1;
		}
	}
	return 0;
}

static int has_flag(const char *flags, const char *f)
{
	size_t len = strlen(f);

	for (const char *p = flags; (p = strstr(p, f)) != NULL; p += len)
		if ((p == flags || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
			return 1;
	return 0;
}

static void set_up_slices(char *base)
{
	for (size_t i = 0; i < NSLICES; i++) {
		char *p = base + i * SLICE;
		int r = 0;

		switch (slices[i].how) {
		case ADVISE:
			r = madvise(p, SLICE, slices[i].advice);
			break;
		case LOCK:
			r = mlock(p, SLICE);
			break;
		case LOCK_ONFAULT:
			r = mlock2(p, SLICE, MLOCK_ONFAULT);
			break;
		case WAS_WRITABLE: /* accounted as writable memory ("ac") though not writable now */
			r = mprotect(p, SLICE, slices[i].advice);
			break;
		case NORESERVE:
			if (mmap(p, SLICE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
				 -1, 0) != p)
				r = -1;
			break;
		}
		if (r != 0)
			zt_fail("setting '%s' on slice %zu: %s", slices[i].flag, i, strerror(errno));
		if (slices[i].how != WAS_WRITABLE)
			memset(p, 'A' + (int)i, SLICE);
	}
}

#define NCHECKED (NSLICES + 2)

int main(void)
{
	const size_t big_offsets[] = { 0, 17UL << 30, BIG - PAGE };
	struct vma before[NCHECKED], now;
	uintptr_t starts[NCHECKED];
	char *base, *big, *none;

	/* PROT_NONE guards on both sides: the outer slices cannot merge with a neighbour */
	base = mmap(NULL, (NSLICES + 2) * SLICE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED || mprotect(base + SLICE, NSLICES * SLICE, PROT_READ | PROT_WRITE) != 0)
		zt_fail("mmap: %s", strerror(errno));
	base += SLICE;
	big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	none = mmap(NULL, BIG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (big == MAP_FAILED || none == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	set_up_slices(base);
	for (size_t i = 0; i < sizeof(big_offsets) / sizeof(big_offsets[0]); i++)
		memset(big + big_offsets[i], 'a' + (int)i, PAGE);

	for (size_t i = 0; i < NSLICES; i++)
		starts[i] = (uintptr_t)(base + i * SLICE);
	starts[NSLICES] = (uintptr_t)big;
	starts[NSLICES + 1] = (uintptr_t)none;
	for (size_t i = 0; i < NCHECKED; i++) {
		const char *want = i < NSLICES ? slices[i].flag : "nr";
		uintptr_t end = i < NSLICES ? starts[i] + SLICE : starts[i] + BIG;

		if (!find_vma(starts[i], &before[i]) || before[i].end != end)
			zt_fail("no VMA of its own at %#lx (slice %zu, '%s')", (unsigned long)starts[i], i, want);
		if (*want && !has_flag(before[i].flags, want))
			zt_fail("VMA at %#lx has VmFlags '%s', without '%s'", (unsigned long)starts[i], before[i].flags,
				want);
	}

	zt_ready();
	zt_wait_stop();

	for (size_t i = 0; i < NCHECKED; i++) {
		if (!find_vma(starts[i], &now))
			zt_fail("no VMA starts at %#lx any more (was %#lx-%#lx '%s')", (unsigned long)starts[i],
				(unsigned long)before[i].start, (unsigned long)before[i].end, before[i].flags);
		if (now.end != before[i].end)
			zt_fail("VMA at %#lx ends at %#lx, was %#lx (flags then '%s', now '%s')",
				(unsigned long)starts[i], (unsigned long)now.end, (unsigned long)before[i].end,
				before[i].flags, now.flags);
		if (strcmp(now.flags, before[i].flags) != 0)
			zt_fail("VMA at %#lx has VmFlags '%s', was '%s'", (unsigned long)starts[i], now.flags,
				before[i].flags);
	}
	for (size_t i = 0; i < NSLICES; i++)
		for (size_t k = 0; k < SLICE && slices[i].how != WAS_WRITABLE; k++)
			if (base[i * SLICE + k] != 'A' + (int)i)
				zt_fail("slice %zu ('%s') byte %zu changed", i, slices[i].flag, k);
	for (size_t i = 0; i < sizeof(big_offsets) / sizeof(big_offsets[0]); i++)
		for (size_t k = 0; k < PAGE; k++)
			if (big[big_offsets[i] + k] != 'a' + (int)i)
				zt_fail("64 GiB mapping: byte %zu of the page at %zu changed", k, big_offsets[i]);
	zt_pass();
}
