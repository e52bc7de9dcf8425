/* guard_pages.c - guard regions (madvise MADV_GUARD_INSTALL, kernel 6.13+) in a buffer.
 *
 * A 16-page private buffer holds a pattern; pages 3-4 and 10 become guard pages. The
 * program's own SIGSEGV handler (siglongjmp) is installed before READY. After SIGTERM:
 * the handler must still be the program's (a dump whose parasite faults on a guard page
 * used to leave SIGSEGV reset to SIG_DFL), every data page must hold its pattern, and
 * touching each guard page must still fault while every other page must not.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define NPAGES 16
static sigjmp_buf probe_env;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

static int faults(volatile char *p)
{
	if (sigsetjmp(probe_env, 1))
		return 1;
	(void)*p;
	return 0;
}

static int is_guard(int page)
{
	return page == 3 || page == 4 || page == 10;
}

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *buf = mmap(NULL, NPAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	for (int i = 0; i < NPAGES; i++)
		memset(buf + i * pg, 'a' + i, pg);
	if (madvise(buf + 3 * pg, 2 * pg, MADV_GUARD_INSTALL) || madvise(buf + 10 * pg, pg, MADV_GUARD_INSTALL))
		zt_fail("MADV_GUARD_INSTALL: %s (kernel 6.13+ needed)", strerror(errno));
	struct sigaction sa = {0};
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL))
		zt_fail("sigaction: %s", strerror(errno));
	for (int i = 0; i < NPAGES; i++)
		if (faults(buf + i * pg) != is_guard(i))
			zt_fail("before READY: page %d %s", i, is_guard(i) ? "is not a guard" : "faults");

	zt_ready();
	zt_wait_stop();

	struct sigaction now;
	if (sigaction(SIGSEGV, NULL, &now) || now.sa_handler != on_segv)
		zt_fail("the SIGSEGV handler is no longer the program's");
	for (int i = 0; i < NPAGES; i++) {
		if (faults(buf + i * pg) != is_guard(i))
			zt_fail("page %d %s", i, is_guard(i) ? "is no longer a guard page" : "faults");
		if (!is_guard(i))
			for (long k = 0; k < pg; k++)
				if (buf[i * pg + k] != 'a' + i)
					zt_fail("page %d byte %ld is %d", i, k, buf[i * pg + k]);
	}
	zt_pass();
}
