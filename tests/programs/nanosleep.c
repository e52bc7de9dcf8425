/* nanosleep.c - dumped in the middle of a nanosleep().
 *
 * Right after READY it calls nanosleep(3 s); the harness dumps (and restores)
 * during the sleep and sends no signal until the file "nanosleep.done" exists.
 * The call must return 0 (not EINTR) and CLOCK_MONOTONIC must show that at
 * least 3 s passed (and not absurdly more). Then it waits for SIGTERM.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	struct timespec req = { 3, 0 }, rem = { 0, 0 };
	int64_t t0, t1;
	int r, err, fd;

	zt_ready();
	t0 = zt_now_ns();
	r = nanosleep(&req, &rem);
	err = errno;
	t1 = zt_now_ns();

	fd = open("nanosleep.done", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		zt_fail("create nanosleep.done: %s", strerror(errno));
	close(fd);

	zt_wait_stop();

	if (r != 0)
		zt_fail("nanosleep returned %d (%s), remaining %ld.%09ld s", r, strerror(err), (long)rem.tv_sec,
			rem.tv_nsec);
	if (t1 - t0 < 3000000000LL)
		zt_fail("nanosleep(3 s) returned after only %lld ms", (long long)((t1 - t0) / 1000000));
	if (t1 - t0 > 40000000000LL)
		zt_fail("nanosleep(3 s) took %lld ms", (long long)((t1 - t0) / 1000000));
	zt_pass();
}
