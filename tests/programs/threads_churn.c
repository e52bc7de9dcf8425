/* threads_churn.c - threads created and joined in a tight loop, all the time.
 *
 * Two spawner threads each create a short-lived worker, join it, and go again, without
 * pause, so a dump always meets threads being born, running and exiting. Every worker adds
 * its index to a per-spawner sum. After SIGTERM the spawners stop; each sum must equal
 * 0 + 1 + ... + (count - 1) (no worker lost or run twice), and the spawners must have made
 * progress after SIGTERM was sent (they still run after a restore).
 */
#define _GNU_SOURCE
#include "zt.h"
#include "zt_thr.h"

#include <stdatomic.h>

#define SPAWNERS 2

struct spawner {
	pthread_t thread;
	_Atomic uint64_t count;
	uint64_t sum;
};

static struct spawner spawners[SPAWNERS];
static atomic_int done;

struct job {
	uint64_t *sum;
	uint64_t index;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	*j->sum += j->index; /* the spawner waits in join: no race */
	return NULL;
}

static void *spawn(void *arg)
{
	struct spawner *s = arg;
	while (!atomic_load(&done)) {
		struct job j = {&s->sum, atomic_load(&s->count)};
		pthread_t t;
		int err = pthread_create(&t, NULL, worker, &j);
		if (err) {
			zt_thr_error("pthread_create: %s", strerror(err));
			return NULL;
		}
		err = pthread_join(t, NULL);
		if (err) {
			zt_thr_error("pthread_join: %s", strerror(err));
			return NULL;
		}
		atomic_fetch_add(&s->count, 1);
	}
	return NULL;
}

int main(void)
{
	for (int i = 0; i < SPAWNERS; i++)
		zt_thr_create(&spawners[i].thread, spawn, &spawners[i]);
	while (atomic_load(&spawners[0].count) < 100 || atomic_load(&spawners[1].count) < 100)
		zt_sleep_ms(1);
	zt_ready();
	zt_wait_stop();
	uint64_t at_stop[SPAWNERS];
	for (int i = 0; i < SPAWNERS; i++)
		at_stop[i] = atomic_load(&spawners[i].count);
	for (int i = 0; i < SPAWNERS; i++)
		for (int ms = 0; atomic_load(&spawners[i].count) < at_stop[i] + 10; ms += 5) {
			if (ms > 30000)
				zt_fail("spawner %d made no progress after SIGTERM", i);
			zt_sleep_ms(5);
		}
	atomic_store(&done, 1);
	for (int i = 0; i < SPAWNERS; i++)
		pthread_join(spawners[i].thread, NULL);
	zt_thr_check_errors();
	for (int i = 0; i < SPAWNERS; i++) {
		uint64_t n = atomic_load(&spawners[i].count);
		if (spawners[i].sum != n * (n - 1) / 2)
			zt_fail("spawner %d: sum of %llu workers is %llu, expected %llu", i, (unsigned long long)n,
				(unsigned long long)spawners[i].sum, (unsigned long long)(n * (n - 1) / 2));
	}
	zt_pass();
}
