/* threads_mutex.c - threads contending for a mutex across the dump.
 *
 * N worker threads loop: lock the mutex, check nobody else is inside (owner field), do a
 * deliberately slow non-atomic read-modify-write of the shared counters `total` (+1) and
 * `weighted` (+i+1), unlock; outside the lock each bumps its own counter own[i]. Bursts of
 * lock/unlock alternate with short sleeps, so at the dump threads are inside the critical
 * section, blocked on the mutex's futex, sleeping, or between.
 * After SIGTERM (to main): every thread must still make progress (own[i] grows within a
 * few seconds after SIGTERM, and is above its READY value); then the workers are stopped
 * and joined, and total == sum(own[i]) and weighted == sum((i+1) * own[i]) must hold
 * exactly (a lost update means mutual exclusion broke), and the mutex must be free.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define N 4
#define BURST 200

struct worker {
	pthread_t thread;
	int idx;
	long own; /* written by the worker only (atomic stores), read by main */
} __attribute__((aligned(64)));

static struct worker workers[N];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long total, weighted; /* under lock */
static pid_t owner;          /* under lock: tid of the thread inside, 0 if none */
static int stop_workers;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pid_t tid = zt_gettid();

	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		for (int k = 0; k < BURST; k++) {
			long t;

			pthread_mutex_lock(&lock);
			if (owner != 0)
				zt_thr_error("thread %d got the mutex while thread %d holds it", (int)tid, (int)owner);
			owner = tid;
			t = total;
			for (int spin = 0; spin < 64; spin++)
				ZT_ESCAPE(&t); /* widen the window between the read and the write */
			total = t + 1;
			weighted += w->idx + 1;
			if (owner != tid)
				zt_thr_error("thread %d: owner changed to %d inside the critical section", (int)tid,
					     (int)owner);
			owner = 0;
			pthread_mutex_unlock(&lock);
			__atomic_store_n(&w->own, w->own + 1, __ATOMIC_RELAXED);
		}
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void snapshot(long *out)
{
	for (int i = 0; i < N; i++)
		out[i] = __atomic_load_n(&workers[i].own, __ATOMIC_RELAXED);
}

int main(void)
{
	long at_ready[N], at_term[N], sum = 0, wsum = 0;
	int64_t end;
	int err;

	for (int i = 0; i < N; i++) {
		workers[i].idx = i;
		zt_thr_create(&workers[i].thread, worker_main, &workers[i]);
	}
	/* every worker is running before READY */
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < N; i++)
		while (__atomic_load_n(&workers[i].own, __ATOMIC_RELAXED) < BURST) {
			if (zt_now_ns() > end)
				zt_fail("worker %d did not start within 5 s", i);
			zt_sleep_ms(1);
		}
	zt_thr_check_errors();

	zt_ready();
	snapshot(at_ready);
	zt_wait_stop();

	/* after SIGTERM (after the restore): every thread is still alive and counting */
	snapshot(at_term);
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < N; i++) {
		while (__atomic_load_n(&workers[i].own, __ATOMIC_RELAXED) <= at_term[i]) {
			if (zt_now_ns() > end)
				zt_fail("worker %d made no progress within 5 s after SIGTERM (own %ld)", i, at_term[i]);
			zt_sleep_ms(1);
		}
		if (at_term[i] <= at_ready[i])
			zt_info("worker %d: no progress between READY and SIGTERM (%ld)", i, at_ready[i]);
	}

	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < N; i++)
		zt_thr_join(workers[i].thread, NULL);
	zt_thr_check_errors();

	err = pthread_mutex_trylock(&lock);
	if (err)
		zt_fail("the mutex is not free after all workers were joined: %s", strerror(err));
	for (int i = 0; i < N; i++) {
		if (workers[i].own <= at_ready[i])
			zt_fail("worker %d: own counter %ld did not grow after READY (%ld)", i, workers[i].own,
				at_ready[i]);
		sum += workers[i].own;
		wsum += (long)(i + 1) * workers[i].own;
	}
	if (total != sum)
		zt_fail("shared total %ld != sum of per-thread counts %ld (lost or extra updates)", total, sum);
	if (weighted != wsum)
		zt_fail("shared weighted sum %ld != expected %ld", weighted, wsum);
	if (owner != 0)
		zt_fail("owner field is %d after all workers left", (int)owner);
	pthread_mutex_unlock(&lock);
	zt_info("total %ld", total);
	zt_pass();
}
