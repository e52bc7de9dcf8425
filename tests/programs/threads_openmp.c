/* threads_openmp.c - an OpenMP (libgomp) team working across the dump.
 *
 * main runs parallel regions back to back (num_threads(TEAM), schedule(static)): each
 * computes, with reductions, sum(i), sum(i*i mod 1000003) and xor(i*2654435761) over
 * i = 1..M and per-thread iteration counts, and every result is checked against the
 * closed form / a serial computation: a wrong sum, a wrong team size, a wrong static
 * split or a team thread that is not one of the OS threads of the first region fails.
 * Between regions libgomp's idle team threads wait in futexes (or spin).
 * After SIGTERM (after the restore) it runs AFTER more regions, checked the same way,
 * and requires that regions completed after READY too.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <omp.h>

#define TEAM 4
#define M 200000L
#define AFTER 50

static unsigned long long want_sum, want_sq, want_xor;
static pid_t team_tids[TEAM];
static long regions;

static void serial_reference(void)
{
	for (long i = 1; i <= M; i++) {
		want_sum += (unsigned long long)i;
		want_sq += (unsigned long long)((i * i) % 1000003);
		want_xor ^= (unsigned long long)i * 2654435761ULL;
	}
	if (want_sum != (unsigned long long)(M * (M + 1) / 2))
		zt_fail("serial sum %llu != closed form", want_sum);
}

static int known_tid(pid_t t)
{
	for (int i = 0; i < TEAM; i++)
		if (team_tids[i] == t)
			return 1;
	return 0;
}

/* one checked parallel region; first: record the team's tids */
static void region(int first, const char *when)
{
	unsigned long long sum = 0, sq = 0, x = 0;
	long per_thread[TEAM] = { 0 };
	pid_t tids[TEAM] = { 0 };
	int team = 0, bad_num = 0;

#pragma omp parallel num_threads(TEAM) reduction(+ : sum, sq) reduction(^ : x)
	{
		int me = omp_get_thread_num();
		long mine = 0;

		if (me == 0)
			team = omp_get_num_threads();
		if (me < 0 || me >= TEAM) {
#pragma omp atomic write
			bad_num = 1;
		} else {
			tids[me] = zt_gettid();
		}
#pragma omp for schedule(static)
		for (long i = 1; i <= M; i++) {
			sum += (unsigned long long)i;
			sq += (unsigned long long)((i * i) % 1000003);
			x ^= (unsigned long long)i * 2654435761ULL;
			mine++;
		}
		if (me >= 0 && me < TEAM)
			per_thread[me] = mine;
	}
	regions++;
	if (team != TEAM || bad_num)
		zt_fail("%s, region %ld: team of %d threads (bad thread number %d), expected %d", when, regions, team,
			bad_num, TEAM);
	if (sum != want_sum || sq != want_sq || x != want_xor)
		zt_fail("%s, region %ld: sum %llu sq %llu xor %llx, expected %llu %llu %llx", when, regions, sum, sq, x,
			want_sum, want_sq, want_xor);
	for (int t = 0; t < TEAM; t++) {
		/* schedule(static) without a chunk: contiguous blocks, sizes differ by at most 1 */
		long lo = M / TEAM, hi = lo + (M % TEAM ? 1 : 0);
		if (per_thread[t] < lo || per_thread[t] > hi)
			zt_fail("%s, region %ld: thread %d did %ld iterations, expected %ld..%ld", when, regions, t,
				per_thread[t], lo, hi);
	}
	if (first) {
		memcpy(team_tids, tids, sizeof(tids));
		for (int i = 0; i < TEAM; i++)
			for (int j = 0; j < i; j++)
				if (team_tids[i] == team_tids[j])
					zt_fail("two team members share tid %d", (int)team_tids[i]);
		if (team_tids[0] != getpid())
			zt_fail("team master tid %d is not the main thread", (int)team_tids[0]);
	} else {
		for (int t = 0; t < TEAM; t++)
			if (!known_tid(tids[t]))
				zt_fail("%s, region %ld: team thread %d is tid %d, not one of the first team's threads",
					when, regions, t, (int)tids[t]);
	}
}

int main(void)
{
	sigset_t term, old;
	long at_ready;
	int64_t t0;

	serial_reference();
	omp_set_dynamic(0);
	/* the team threads are created in the first region: keep SIGTERM for main */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	region(1, "first region");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < 20; i++)
		region(0, "before READY");

	zt_ready();
	at_ready = regions;
	while (!zt_stop)
		region(0, "running");

	/* after SIGTERM (after the restore) */
	if (regions <= at_ready)
		zt_fail("no parallel region completed after READY");
	t0 = zt_now_ns();
	for (int i = 0; i < AFTER; i++)
		region(0, "after SIGTERM");
	zt_info("%ld regions (%ld after READY); %d after SIGTERM took %.3f s", regions, regions - at_ready, AFTER,
		(double)(zt_now_ns() - t0) / 1e9);
	zt_pass();
}
