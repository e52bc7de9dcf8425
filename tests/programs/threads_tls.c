/* threads_tls.c - thread-local storage of every thread across the dump.
 *
 * Each of N workers and main (index N) has distinct values in:
 *   __thread long tls_val        (.tbss, zero-initialised: set to 1000*(i+1)+7),
 *   __thread int tls_init = 42   (.tdata: checked to start at 42, then set to 42+i+1),
 *   __thread char tls_buf[64]    (a per-thread string),
 *   pthread_key k_obj            (a heap object {magic, idx}),
 *   pthread_key k_dtor           (a pointer to ident[i], with a destructor that records
 *                                 which value it was called with at thread exit).
 * The address of tls_val (which depends on the thread pointer, %fs) is recorded too.
 * Every thread re-checks all of it every 2 ms until told to stop, then once more, in
 * the thread itself. After SIGTERM (after the restore) every worker must still be
 * looping; then they are stopped and joined: each must have checked successfully after
 * SIGTERM, and each destructor must have run exactly once with its thread's value.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define N 4
#define MAGIC 0x7715c0debeefULL

struct obj {
	unsigned long long magic;
	int idx;
};

struct worker {
	pthread_t thread;
	int idx;
	pid_t tid;
	void *val_addr;   /* &tls_val in that thread, recorded at setup */
	long loops;       /* checks done (atomic) */
	int checked_late; /* a full check passed after stop was requested */
} __attribute__((aligned(64)));

static __thread long tls_val;
static __thread int tls_init = 42;
static __thread char tls_buf[64];

static pthread_key_t k_obj, k_dtor;
static struct worker workers[N + 1]; /* [N] is main */
static int ident[N + 1];
static int dtor_calls[N + 1], dtor_bad;
static int stop_workers;

static void dtor(void *p)
{
	int *id = p;

	if (id < ident || id > ident + N)
		__atomic_store_n(&dtor_bad, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&dtor_calls[id - ident], 1, __ATOMIC_RELAXED);
}

static void fill_buf(char *b, int idx)
{
	snprintf(b, 64, "tls-buffer-of-thread-%d-%s", idx, idx % 2 ? "odd" : "even");
}

static void setup(int idx)
{
	struct obj *o = malloc(sizeof(*o));

	if (tls_init != 42 || tls_val != 0)
		zt_thr_error("thread %d: fresh TLS holds tls_init %d, tls_val %ld (expected 42, 0)", idx, tls_init,
			     tls_val);
	tls_val = 1000L * (idx + 1) + 7;
	tls_init = 42 + idx + 1;
	fill_buf(tls_buf, idx);
	if (!o)
		zt_fail("malloc");
	o->magic = MAGIC;
	o->idx = idx;
	if (pthread_setspecific(k_obj, o) != 0 || pthread_setspecific(k_dtor, &ident[idx]) != 0)
		zt_fail("pthread_setspecific");
	workers[idx].tid = zt_gettid();
	workers[idx].val_addr = &tls_val;
}

/* 0 if every TLS value of this thread is right, else records the problem and returns -1 */
static int check(int idx, const char *when)
{
	char want[64];
	struct obj *o = pthread_getspecific(k_obj);
	void *d = pthread_getspecific(k_dtor);

	fill_buf(want, idx);
	ZT_ESCAPE(&tls_val);
	ZT_ESCAPE(&tls_init);
	ZT_ESCAPE(tls_buf);
	if (zt_gettid() != workers[idx].tid)
		zt_thr_error("thread %d %s: tid %d, was %d", idx, when, (int)zt_gettid(), (int)workers[idx].tid);
	else if ((void *)&tls_val != workers[idx].val_addr)
		zt_thr_error("thread %d %s: &tls_val is %p, was %p (thread pointer changed)", idx, when,
			     (void *)&tls_val, workers[idx].val_addr);
	else if (tls_val != 1000L * (idx + 1) + 7)
		zt_thr_error("thread %d %s: __thread tls_val %ld, expected %ld", idx, when, tls_val,
			     1000L * (idx + 1) + 7);
	else if (tls_init != 42 + idx + 1)
		zt_thr_error("thread %d %s: __thread tls_init %d, expected %d", idx, when, tls_init, 42 + idx + 1);
	else if (strcmp(tls_buf, want) != 0)
		zt_thr_error("thread %d %s: __thread tls_buf '%.63s', expected '%s'", idx, when, tls_buf, want);
	else if (!o || o->magic != MAGIC || o->idx != idx)
		zt_thr_error("thread %d %s: pthread_getspecific(k_obj) = %p (magic %llx idx %d)", idx, when, (void *)o,
			     o ? o->magic : 0ULL, o ? o->idx : -1);
	else if (d != &ident[idx])
		zt_thr_error("thread %d %s: pthread_getspecific(k_dtor) = %p, expected %p", idx, when, d,
			     (void *)&ident[idx]);
	else
		return 0;
	return -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	setup(w->idx);
	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		if (check(w->idx, "while running") != 0)
			return NULL;
		__atomic_add_fetch(&w->loops, 1, __ATOMIC_RELAXED);
		nanosleep(&ts, NULL);
	}
	if (check(w->idx, "after SIGTERM") == 0)
		w->checked_late = 1;
	free(pthread_getspecific(k_obj));
	pthread_setspecific(k_obj, NULL);
	return NULL;
}

int main(void)
{
	long at_term[N];
	int64_t end;

	if (pthread_key_create(&k_obj, NULL) != 0 || pthread_key_create(&k_dtor, dtor) != 0)
		zt_fail("pthread_key_create");
	setup(N);
	for (int i = 0; i < N; i++) {
		workers[i].idx = i;
		zt_thr_create(&workers[i].thread, worker_main, &workers[i]);
	}
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < N; i++)
		while (__atomic_load_n(&workers[i].loops, __ATOMIC_RELAXED) < 3) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("worker %d did not start within 5 s", i);
			zt_sleep_ms(1);
		}
	for (int i = 0; i <= N; i++)
		for (int j = 0; j < i; j++)
			if (workers[i].val_addr == workers[j].val_addr)
				zt_fail("threads %d and %d share &tls_val %p", i, j, workers[i].val_addr);
	check(N, "before READY");
	zt_thr_check_errors();

	zt_ready();
	zt_wait_stop();

	check(N, "after SIGTERM");
	for (int i = 0; i < N; i++)
		at_term[i] = __atomic_load_n(&workers[i].loops, __ATOMIC_RELAXED);
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < N; i++)
		while (__atomic_load_n(&workers[i].loops, __ATOMIC_RELAXED) < at_term[i] + 3) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("worker %d made no progress within 5 s after SIGTERM", i);
			zt_sleep_ms(1);
		}
	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < N; i++)
		zt_thr_join(workers[i].thread, NULL);
	zt_thr_check_errors();
	for (int i = 0; i < N; i++) {
		if (!workers[i].checked_late)
			zt_fail("worker %d did not complete its final check", i);
		if (dtor_calls[i] != 1)
			zt_fail("key destructor ran %d times for worker %d, expected 1", dtor_calls[i], i);
	}
	if (dtor_bad || dtor_calls[N] != 0)
		zt_fail("key destructor called with a wrong value (bad %d, main's value %d times)", dtor_bad,
			dtor_calls[N]);
	check(N, "at the end");
	zt_thr_check_errors();
	zt_pass();
}
