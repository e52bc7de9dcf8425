/* threads_many.c - many threads: zt_threads_many N (default 100).
 *
 * N threads (256 KiB stacks), each incrementing its own counter every 50 ms; no barriers,
 * no shared locks. Before READY all have started and /proc/self/task lists exactly main
 * and the N recorded tids.
 * After SIGTERM (after the restore): /proc/self/task still lists exactly those tids, every
 * thread's counter advances by at least 2 within 10 s (all alive and scheduled), then all
 * are stopped and joined; each must have returned its own index, and counted past its
 * READY value.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define PERIOD_MS 50

struct worker {
	pthread_t thread;
	long idx;
	pid_t tid;
	long count;
} __attribute__((aligned(64)));

static struct worker *w;
static int stop_workers;

static void *worker_main(void *arg)
{
	struct worker *me = arg;

	__atomic_store_n(&me->tid, zt_gettid(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, PERIOD_MS * 1000 * 1000 };
		__atomic_add_fetch(&me->count, 1, __ATOMIC_RELEASE);
		nanosleep(&ts, NULL);
	}
	return (void *)me->idx;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
	pthread_attr_t attr;
	pid_t *tids;
	long *at_ready, *at_term;
	char why[256];
	int64_t end;
	int err;

	if (n < 1 || n > 100000)
		zt_fail("bad thread count '%s'", argc > 1 ? argv[1] : "");
	w = calloc((size_t)n, sizeof(*w));
	tids = calloc((size_t)n + 1, sizeof(*tids));
	at_ready = calloc((size_t)n, sizeof(long));
	at_term = calloc((size_t)n, sizeof(long));
	if (!w || !tids || !at_ready || !at_term)
		zt_fail("calloc");
	pthread_attr_init(&attr);
	if ((err = pthread_attr_setstacksize(&attr, 256 * 1024)) != 0)
		zt_fail("pthread_attr_setstacksize: %s", strerror(err));
	for (long i = 0; i < n; i++) {
		w[i].idx = i;
		zt_thr_create_masked(&w[i].thread, &attr, worker_main, &w[i], NULL);
	}
	pthread_attr_destroy(&attr);

	end = zt_now_ns() + 30000000000LL;
	for (long i = 0; i < n; i++)
		while (__atomic_load_n(&w[i].count, __ATOMIC_ACQUIRE) < 1) {
			if (zt_now_ns() > end)
				zt_fail("thread %ld of %ld did not start within 30 s", i, n);
			zt_sleep_ms(1);
		}
	tids[0] = getpid();
	for (long i = 0; i < n; i++)
		tids[i + 1] = w[i].tid;
	if (zt_thr_tasks_equal(tids, (int)n + 1, why, sizeof(why)) != 0)
		zt_fail("before READY: %s", why);

	zt_ready();
	for (long i = 0; i < n; i++)
		at_ready[i] = __atomic_load_n(&w[i].count, __ATOMIC_ACQUIRE);
	zt_wait_stop();

	/* after SIGTERM (after the restore) */
	if (zt_thr_tasks_equal(tids, (int)n + 1, why, sizeof(why)) != 0)
		zt_fail("after SIGTERM: %s", why);
	for (long i = 0; i < n; i++)
		at_term[i] = __atomic_load_n(&w[i].count, __ATOMIC_ACQUIRE);
	end = zt_now_ns() + 10000000000LL;
	for (long i = 0; i < n; i++)
		while (__atomic_load_n(&w[i].count, __ATOMIC_ACQUIRE) < at_term[i] + 2) {
			if (zt_now_ns() > end) {
				long stuck = 0;
				for (long j = 0; j < n; j++)
					stuck += __atomic_load_n(&w[j].count, __ATOMIC_ACQUIRE) < at_term[j] + 2;
				zt_fail("%ld of %ld threads (first: #%ld, tid %d, count %ld) did not count 2 more within "
					"10 s after SIGTERM", stuck, n, i, (int)w[i].tid, at_term[i]);
			}
			zt_sleep_ms(5);
		}

	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	for (long i = 0; i < n; i++) {
		void *ret = NULL;
		zt_thr_join(w[i].thread, &ret);
		if ((long)ret != i)
			zt_fail("thread %ld returned %ld", i, (long)ret);
		if (w[i].count <= at_ready[i])
			zt_fail("thread %ld: count %ld did not grow after READY (%ld)", i, w[i].count, at_ready[i]);
	}
	zt_thr_check_errors();
	zt_info("%ld threads", n);
	zt_pass();
}
