/* threads_bigbuf.c - four running threads, each owning a buffer of pseudo-random bytes.
 *
 * argv[1] (optional): total size in MiB, default 256, split over the threads.
 * Every worker keeps counting (never blocking for long) until main has seen it count after
 * SIGTERM, so a dump has to
 * freeze threads that are running, not sleeping. After SIGTERM each buffer is compared word
 * by word with the regenerated stream and each worker must have counted after READY.
 */
#define _GNU_SOURCE
#include "zt.h"
#include "zt_thr.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NTHREADS 4

struct worker {
	pthread_t thread;
	uint64_t *buf;
	size_t nwords;
	uint64_t seed;
	_Atomic uint64_t count;
};

static struct worker workers[NTHREADS];
static atomic_int filled;
static atomic_int done;

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t s = w->seed;
	for (size_t i = 0; i < w->nwords; i++)
		w->buf[i] = splitmix64(&s);
	atomic_fetch_add(&filled, 1);
	while (!atomic_load(&done)) {
		for (int i = 0; i < 100000 && !atomic_load(&done); i++)
			atomic_fetch_add_explicit(&w->count, 1, memory_order_relaxed);
		zt_sleep_ms(1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	size_t mib = 256;
	if (argc > 1) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(argv[1], &end, 10);
		if (errno || *end || v < NTHREADS || v > 1024 * 1024)
			zt_fail("bad size argument '%s' (MiB)", argv[1]);
		mib = v;
	}
	size_t per = (mib << 20) / NTHREADS;
	for (int t = 0; t < NTHREADS; t++) {
		struct worker *w = &workers[t];
		w->buf = mmap(NULL, per, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w->buf == MAP_FAILED)
			zt_fail("mmap(%zu bytes): %s", per, strerror(errno));
		w->nwords = per / 8;
		w->seed = 0x1234567ULL * (uint64_t)(t + 1);
		int e = pthread_create(&w->thread, NULL, work, w);
		if (e)
			zt_fail("pthread_create: %s", strerror(e));
	}
	while (atomic_load(&filled) < NTHREADS)
		zt_sleep_ms(5);
	uint64_t at_ready[NTHREADS];
	for (int t = 0; t < NTHREADS; t++)
		at_ready[t] = atomic_load(&workers[t].count);
	zt_ready();
	zt_wait_stop();
	/* Every worker must still be running: wait (generously, the machine may be loaded)
	 * until each has counted past its value at READY. */
	for (int t = 0; t < NTHREADS; t++) {
		for (int ms = 0; atomic_load(&workers[t].count) <= at_ready[t]; ms += 10) {
			if (ms > 30000)
				zt_fail("worker %d did not run after READY", t);
			zt_sleep_ms(10);
		}
	}
	atomic_store(&done, 1);
	for (int t = 0; t < NTHREADS; t++) {
		struct worker *w = &workers[t];
		pthread_join(w->thread, NULL);
		uint64_t s = w->seed;
		for (size_t i = 0; i < w->nwords; i++) {
			uint64_t want = splitmix64(&s);
			if (w->buf[i] != want)
				zt_fail("worker %d: word %zu is %016llx, expected %016llx", t, i,
					(unsigned long long)w->buf[i], (unsigned long long)want);
		}
	}
	zt_pass();
}
