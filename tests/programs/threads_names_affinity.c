/* threads_names_affinity.c - per-thread names (comm) and CPU affinities.
 *
 * With A and B the first two CPUs main may run on (A == B on a one-CPU machine):
 *   main              "zt-main-thread"  affinity left alone
 *   W0 "zt-cpu0"         {A}
 *   W1 "zt-cpu1"         {B}
 *   W2 "zt-both"         {A, B}
 *   W3 "zt-15-chars-max" {A}   (a name of the full 15 characters)
 *   W4 "zt sp@ce"        {B}   (a name with a space)
 * Each worker sets its own name (pthread_setname_np) and affinity (pthread_setaffinity_np),
 * then every 5 ms checks in the thread: prctl(PR_GET_NAME), sched_getaffinity(0), and
 * that sched_getcpu() is in its set.
 * Before READY and after SIGTERM (after the restore) main checks pthread_getname_np and
 * sched_getaffinity(tid) of every worker, and that /proc/self/task/ * /comm lists exactly
 * these threads with these names; after SIGTERM every worker must still run its checks.
 */
#define _GNU_SOURCE
#include "zt_thr.h"

#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#define NW 5
#define MAIN_NAME "zt-main-thread"

struct worker {
	pthread_t thread;
	int idx;
	const char *name;
	cpu_set_t set;
	pid_t tid;
	long loops;
	int ready;
} __attribute__((aligned(64)));

static struct worker w[NW];
static int stop_workers;

static int same_set(const cpu_set_t *a, const cpu_set_t *b)
{
	return CPU_EQUAL(a, b);
}

static void set_text(const cpu_set_t *s, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE && n + 8 < len; c++)
		if (CPU_ISSET(c, s))
			n += (size_t)snprintf(out + n, len - n, "%s%d", n ? "," : "", c);
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	int err;

	if ((err = pthread_setname_np(pthread_self(), me->name)) != 0)
		zt_thr_error("W%d: pthread_setname_np(%s): %s", me->idx, me->name, strerror(err));
	if ((err = pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), &me->set)) != 0)
		zt_thr_error("W%d: pthread_setaffinity_np: %s", me->idx, strerror(err));
	sched_yield(); /* move to an allowed CPU */
	__atomic_store_n(&me->tid, zt_gettid(), __ATOMIC_RELEASE);
	__atomic_store_n(&me->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		char name[32] = "";
		cpu_set_t cur;
		int cpu;

		if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0 || strcmp(name, me->name) != 0) {
			zt_thr_error("W%d: PR_GET_NAME in the thread gives '%s', expected '%s'", me->idx, name,
				     me->name);
			return NULL;
		}
		CPU_ZERO(&cur);
		if (sched_getaffinity(0, sizeof(cur), &cur) != 0 || !same_set(&cur, &me->set)) {
			char a[64], b[64];
			set_text(&cur, a, sizeof(a));
			set_text(&me->set, b, sizeof(b));
			zt_thr_error("W%d: sched_getaffinity(0) in the thread gives {%s}, expected {%s}", me->idx, a, b);
			return NULL;
		}
		cpu = sched_getcpu();
		if (cpu < 0 || !CPU_ISSET(cpu, &me->set)) {
			/* the kernel moves a thread off a CPU not in its mask at once; allow a reschedule */
			sched_yield();
			cpu = sched_getcpu();
			if (cpu < 0 || !CPU_ISSET(cpu, &me->set)) {
				zt_thr_error("W%d (%s): runs on CPU %d, outside its affinity", me->idx, me->name, cpu);
				return NULL;
			}
		}
		__atomic_add_fetch(&me->loops, 1, __ATOMIC_RELEASE);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void check_from_main(const char *when)
{
	char buf[64], why[256];
	pid_t tids[NW + 1];

	if (prctl(PR_GET_NAME, buf, 0, 0, 0) != 0 || strcmp(buf, MAIN_NAME) != 0)
		zt_fail("%s: main thread is named '%s', expected '%s'", when, buf, MAIN_NAME);
	tids[0] = getpid();
	for (int i = 0; i < NW; i++) {
		cpu_set_t cur;
		int err;

		tids[i + 1] = w[i].tid;
		memset(buf, 0, sizeof(buf));
		if ((err = pthread_getname_np(w[i].thread, buf, sizeof(buf))) != 0)
			zt_fail("%s: pthread_getname_np(W%d): %s", when, i, strerror(err));
		if (strcmp(buf, w[i].name) != 0)
			zt_fail("%s: pthread_getname_np(W%d) = '%s', expected '%s'", when, i, buf, w[i].name);
		CPU_ZERO(&cur);
		if (sched_getaffinity(w[i].tid, sizeof(cur), &cur) != 0)
			zt_fail("%s: sched_getaffinity(%d): %s", when, (int)w[i].tid, strerror(errno));
		if (!same_set(&cur, &w[i].set)) {
			char a[64], b[64];
			set_text(&cur, a, sizeof(a));
			set_text(&w[i].set, b, sizeof(b));
			zt_fail("%s: W%d (%s, tid %d) has affinity {%s}, expected {%s}", when, i, w[i].name, (int)w[i].tid,
				a, b);
		}
	}
	if (zt_thr_tasks_equal(tids, NW + 1, why, sizeof(why)) != 0)
		zt_fail("%s: %s", when, why);
	for (int i = 0; i <= NW; i++) {
		char path[64], comm[64];
		const char *want = i == 0 ? MAIN_NAME : w[i - 1].name;
		long n;

		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tids[i]);
		n = zt_read_file(path, comm, sizeof(comm) - 1);
		if (n <= 0)
			zt_fail("%s: cannot read %s", when, path);
		comm[n] = '\0';
		if (comm[n - 1] == '\n')
			comm[n - 1] = '\0';
		if (strcmp(comm, want) != 0)
			zt_fail("%s: %s is '%s', expected '%s'", when, path, comm, want);
	}
}

int main(void)
{
	static const char *names[NW] = { "zt-cpu0", "zt-cpu1", "zt-both", "zt-15-chars-max", "zt sp@ce" };
	cpu_set_t all;
	int a = -1, b = -1;
	long at_term[NW];
	int64_t end;

	if (prctl(PR_SET_NAME, MAIN_NAME, 0, 0, 0) != 0)
		zt_fail("PR_SET_NAME: %s", strerror(errno));
	CPU_ZERO(&all);
	if (sched_getaffinity(0, sizeof(all), &all) != 0)
		zt_fail("sched_getaffinity: %s", strerror(errno));
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all)) {
			if (a < 0)
				a = c;
			else if (b < 0)
				b = c;
		}
	if (a < 0)
		zt_fail("no CPU in the affinity mask");
	if (b < 0) {
		zt_info("only CPU %d is available: both pinned sets are {%d}", a, a);
		b = a;
	}
	for (int i = 0; i < NW; i++) {
		w[i].idx = i;
		w[i].name = names[i];
		CPU_ZERO(&w[i].set);
	}
	CPU_SET(a, &w[0].set);
	CPU_SET(b, &w[1].set);
	CPU_SET(a, &w[2].set);
	CPU_SET(b, &w[2].set);
	CPU_SET(a, &w[3].set);
	CPU_SET(b, &w[4].set);
	for (int i = 0; i < NW; i++)
		zt_thr_create(&w[i].thread, worker_main, &w[i]);
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < NW; i++)
		while (__atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE) < 2) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("W%d did not start within 5 s", i);
			zt_sleep_ms(1);
		}
	check_from_main("before READY");
	zt_thr_check_errors();

	zt_ready();
	zt_wait_stop();

	zt_thr_check_errors();
	check_from_main("after SIGTERM");
	for (int i = 0; i < NW; i++)
		at_term[i] = __atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE);
	end = zt_now_ns() + 5000000000LL;
	for (int i = 0; i < NW; i++)
		while (__atomic_load_n(&w[i].loops, __ATOMIC_ACQUIRE) < at_term[i] + 3) {
			zt_thr_check_errors();
			if (zt_now_ns() > end)
				zt_fail("W%d (%s) made no progress within 5 s after SIGTERM", i, w[i].name);
			zt_sleep_ms(1);
		}
	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NW; i++)
		zt_thr_join(w[i].thread, NULL);
	zt_thr_check_errors();
	zt_pass();
}
