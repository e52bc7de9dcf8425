/* threads_exited.c - threads that are gone before the dump, and thread creation after it.
 *
 * Before READY:
 *   - a joinable thread ran, exited (returning 0xa1) and was joined;
 *   - a detached thread ran and exited: its tid has left /proc/self/task (its stack stays
 *     in glibc's stack cache, reused by later pthread_create once the kernel cleared its
 *     tid word);
 *   - a detached thread stays alive, counting every 2 ms.
 * /proc/self/task then lists exactly main and the live detached thread.
 * After SIGTERM (after the restore): still exactly those two; the live one keeps counting;
 * then 3 rounds of 8 new joinable threads (each checks its fresh TLS, mallocs, returns
 * its argument * 3) are created and joined, one more detached thread is created and
 * reports through a semaphore, and finally the live detached thread is told to stop and
 * acknowledges through a semaphore.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <semaphore.h>
#include <time.h>

#define ROUNDS 3
#define PER_ROUND 8

static __thread long fresh_tls = 11;
static pid_t tid_joined, tid_gone, tid_live;
static int gone_done;
static long live_count;
static int stop_live;
static sem_t live_ack, late_ack;
static long late_value;

static void *joined_main(void *arg)
{
	(void)arg;
	tid_joined = zt_gettid();
	return (void *)0xa1;
}

static void *gone_main(void *arg)
{
	(void)arg;
	tid_gone = zt_gettid();
	__atomic_store_n(&gone_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *live_main(void *arg)
{
	(void)arg;
	__atomic_store_n(&tid_live, zt_gettid(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_live, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		__atomic_add_fetch(&live_count, 1, __ATOMIC_RELEASE);
		nanosleep(&ts, NULL);
	}
	sem_post(&live_ack);
	return NULL;
}

static void *new_main(void *arg)
{
	long v = (long)arg;
	char *p;

	if (fresh_tls != 11)
		zt_thr_error("new thread %ld: fresh __thread variable is %ld, expected 11", v, fresh_tls);
	fresh_tls = v;
	p = malloc(4096 + (size_t)v);
	if (!p)
		zt_thr_error("new thread %ld: malloc failed", v);
	else
		memset(p, (int)v, 4096 + (size_t)v);
	free(p);
	if (fresh_tls != v)
		zt_thr_error("new thread %ld: __thread variable changed under it", v);
	return (void *)(v * 3);
}

static void *late_main(void *arg)
{
	late_value = (long)arg;
	sem_post(&late_ack);
	return NULL;
}

static void create_detached(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	zt_thr_create_masked(&t, &attr, fn, arg, NULL);
	pthread_attr_destroy(&attr);
}

static void sem_wait_5s(sem_t *s, const char *what)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	while (sem_timedwait(s, &dl) != 0) {
		if (errno == EINTR)
			continue;
		zt_fail("%s: %s", what, errno == ETIMEDOUT ? "no report within 5 s" : strerror(errno));
	}
}

int main(void)
{
	pthread_t joined;
	pid_t want[2];
	char why[256];
	void *ret = NULL;
	long at_term;
	int64_t end;

	if (sem_init(&live_ack, 0, 0) != 0 || sem_init(&late_ack, 0, 0) != 0)
		zt_fail("sem_init: %s", strerror(errno));

	zt_thr_create(&joined, joined_main, NULL);
	zt_thr_join(joined, &ret);
	if (ret != (void *)0xa1)
		zt_fail("joined thread returned %p", ret);

	create_detached(gone_main, NULL);
	create_detached(live_main, NULL);
	end = zt_now_ns() + 5000000000LL;
	while (!__atomic_load_n(&gone_done, __ATOMIC_ACQUIRE) || __atomic_load_n(&live_count, __ATOMIC_ACQUIRE) < 3) {
		if (zt_now_ns() > end)
			zt_fail("the detached threads did not run within 5 s");
		zt_sleep_ms(1);
	}
	want[0] = getpid();
	want[1] = tid_live;
	/* the exited detached thread disappears from /proc/self/task once the kernel reaped it */
	end = zt_now_ns() + 5000000000LL;
	while (zt_thr_tasks_equal(want, 2, why, sizeof(why)) != 0) {
		if (zt_now_ns() > end)
			zt_fail("before READY: %s (joined tid %d, exited detached tid %d)", why, (int)tid_joined,
				(int)tid_gone);
		zt_sleep_ms(1);
	}

	zt_ready();
	zt_wait_stop();

	/* after SIGTERM (after the restore) */
	if (zt_thr_tasks_equal(want, 2, why, sizeof(why)) != 0)
		zt_fail("after SIGTERM: %s", why);
	at_term = __atomic_load_n(&live_count, __ATOMIC_ACQUIRE);
	end = zt_now_ns() + 5000000000LL;
	while (__atomic_load_n(&live_count, __ATOMIC_ACQUIRE) < at_term + 3) {
		if (zt_now_ns() > end)
			zt_fail("the live detached thread made no progress within 5 s after SIGTERM");
		zt_sleep_ms(1);
	}

	for (int r = 0; r < ROUNDS; r++) {
		pthread_t t[PER_ROUND];
		for (long i = 0; i < PER_ROUND; i++)
			zt_thr_create(&t[i], new_main, (void *)(r * 100 + i + 1));
		for (long i = 0; i < PER_ROUND; i++) {
			zt_thr_join(t[i], &ret);
			if ((long)ret != (r * 100 + i + 1) * 3)
				zt_fail("new thread %ld of round %d returned %ld", i, r, (long)ret);
		}
		zt_thr_check_errors();
	}
	create_detached(late_main, (void *)4711L);
	sem_wait_5s(&late_ack, "new detached thread");
	if (late_value != 4711)
		zt_fail("new detached thread saw %ld", late_value);

	__atomic_store_n(&stop_live, 1, __ATOMIC_RELEASE);
	sem_wait_5s(&live_ack, "the live detached thread did not acknowledge stop");
	zt_thr_check_errors();
	zt_pass();
}
