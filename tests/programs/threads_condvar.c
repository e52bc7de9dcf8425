/* threads_condvar.c - producer/consumer over a bounded queue with condition variables.
 *
 * The producer puts 1, 2, 3, ... into a ring of QSIZE slots (waiting on `not_full`), the
 * consumer takes them out (waiting on `not_empty`) and checks every item is exactly the
 * previous one + 1: nothing lost, nothing duplicated, nothing out of order. Both pause now
 * and then (at different rates), so at the dump either may be blocked in
 * pthread_cond_wait with the queue full or empty, or running.
 * After SIGTERM (to main): the consumer must keep progressing (several items within a
 * few seconds); then the producer stops, the consumer drains the queue, and the last item
 * consumed must be the last produced, the number consumed equal to it, and both above
 * their READY values.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <time.h>

#define QSIZE 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static long queue[QSIZE]; /* all under lock */
static int q_head, q_len;
static int producer_done;
static long produced; /* last produced (under lock) */
static long consumed; /* last consumed (under lock), also read atomically */
static long n_consumed;
static long full_waits, empty_waits; /* how often each side blocked (under lock) */
static int stop_producer;

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

static void *producer(void *arg)
{
	(void)arg;
	for (long next = 1; !__atomic_load_n(&stop_producer, __ATOMIC_ACQUIRE); next++) {
		pthread_mutex_lock(&lock);
		while (q_len == QSIZE) {
			full_waits++;
			pthread_cond_wait(&not_full, &lock);
		}
		queue[(q_head + q_len) % QSIZE] = next;
		q_len++;
		produced = next;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&lock);
		if (next % 97 == 0)
			pause_us(2000); /* the consumer drains the queue and waits on not_empty */
	}
	pthread_mutex_lock(&lock);
	producer_done = 1;
	pthread_cond_broadcast(&not_empty);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void *consumer(void *arg)
{
	long prev = 0;

	(void)arg;
	for (;;) {
		long item;

		pthread_mutex_lock(&lock);
		while (q_len == 0 && !producer_done) {
			empty_waits++;
			pthread_cond_wait(&not_empty, &lock);
		}
		if (q_len == 0) { /* producer done and queue drained */
			pthread_mutex_unlock(&lock);
			break;
		}
		item = queue[q_head];
		q_head = (q_head + 1) % QSIZE;
		q_len--;
		if (item != prev + 1)
			zt_thr_error("consumer got %ld after %ld (lost, duplicated or reordered)", item, prev);
		prev = item;
		__atomic_store_n(&consumed, item, __ATOMIC_RELAXED);
		n_consumed++;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&lock);
		if (item % 151 == 0)
			pause_us(3000); /* the producer fills the queue and waits on not_full */
	}
	return NULL;
}

int main(void)
{
	pthread_t prod, cons;
	long at_ready, at_term, full_at_ready, empty_at_ready;
	int64_t end;

	zt_thr_create(&cons, consumer, NULL);
	zt_thr_create(&prod, producer, NULL);

	/* both sides have blocked at least once and items flow before READY */
	end = zt_now_ns() + 5000000000LL;
	for (;;) {
		pthread_mutex_lock(&lock);
		int ok = full_waits > 0 && empty_waits > 0 && consumed > 1000;
		pthread_mutex_unlock(&lock);
		if (ok)
			break;
		if (zt_now_ns() > end)
			zt_fail("the queue did not get going within 5 s (full waits %ld, empty waits %ld, consumed %ld)",
				full_waits, empty_waits, consumed);
		zt_sleep_ms(1);
	}
	zt_thr_check_errors();

	zt_ready();
	pthread_mutex_lock(&lock);
	at_ready = consumed;
	full_at_ready = full_waits;
	empty_at_ready = empty_waits;
	pthread_mutex_unlock(&lock);
	zt_wait_stop();

	/* after SIGTERM (after the restore): items still flow */
	at_term = __atomic_load_n(&consumed, __ATOMIC_RELAXED);
	end = zt_now_ns() + 5000000000LL;
	while (__atomic_load_n(&consumed, __ATOMIC_RELAXED) < at_term + 1000) {
		if (zt_now_ns() > end)
			zt_fail("consumer progressed from %ld only to %ld within 5 s after SIGTERM", at_term,
				__atomic_load_n(&consumed, __ATOMIC_RELAXED));
		zt_thr_check_errors();
		zt_sleep_ms(1);
	}

	__atomic_store_n(&stop_producer, 1, __ATOMIC_RELEASE);
	zt_thr_join(prod, NULL);
	zt_thr_join(cons, NULL);
	zt_thr_check_errors();

	if (q_len != 0)
		zt_fail("%d items left in the queue after the consumer finished", q_len);
	if (consumed != produced)
		zt_fail("last consumed %ld != last produced %ld", consumed, produced);
	if (n_consumed != consumed)
		zt_fail("consumed %ld items but the last was %ld", n_consumed, consumed);
	if (consumed <= at_ready)
		zt_fail("consumer did not progress after READY (%ld)", at_ready);
	if (full_waits <= full_at_ready || empty_waits <= empty_at_ready)
		zt_fail("after READY the producer blocked %ld times, the consumer %ld times: expected both > 0",
			full_waits - full_at_ready, empty_waits - empty_at_ready);
	zt_info("items %ld, producer blocked %ld times, consumer %ld times", consumed, full_waits, empty_waits);
	zt_pass();
}
