/* proc_attrs.c - process attributes that live outside memory, files and signals.
 *
 * Before READY, as root: oom_score_adj 456, audit loginuid 4242 (/proc/self/loginuid),
 * PR_SET_THP_DISABLE (with PR_THP_DISABLE_EXCEPT_ADVISED where the kernel has it),
 * PR_SET_CHILD_SUBREAPER, membarrier MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (and the
 * RSEQ variant where the kernel has it), soft and hard resource limits that differ from the defaults,
 * then a switch to uid/gid 65534 (the dump must read the limits from inside: prlimit
 * from outside needs the target's uid or CAP_SYS_RESOURCE) and PR_SET_NO_NEW_PRIVS last.
 * After SIGTERM every one of them must read back as set.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif

#define NOBODY 65534
#define LOGINUID 4242
#define OOM_ADJ 456

static const struct {
	int res;
	struct rlimit lim;
} limits[] = {
	{ RLIMIT_NOFILE, { 777, 900 } },
	{ RLIMIT_CORE, { 12345 * 1024, 23456 * 1024 } },
	{ RLIMIT_NPROC, { 3000, 4000 } },
	{ RLIMIT_MSGQUEUE, { 100000, 200000 } },
	{ RLIMIT_SIGPENDING, { 555, 666 } },
};

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

static long read_number(const char *path)
{
	char buf[64];
	long n = zt_read_file(path, buf, sizeof(buf) - 1);
	char *end;
	long v;

	if (n <= 0)
		zt_fail("cannot read %s: %s", path, strerror(errno));
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf)
		zt_fail("%s holds '%s'", path, buf);
	return v;
}

static void write_self(const char *path, long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld", v);
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		zt_fail("cannot write %ld to %s: %s", v, path, strerror(errno));
	close(fd);
}

int main(void)
{
	int thp_want = 1 | PR_THP_DISABLE_EXCEPT_ADVISED, subreaper = 0;
	uid_t r, e, s;
	long barriers;
	/* a kernel without CONFIG_AUDITSYSCALL has no loginuid at all: nothing to keep */
	int audit = access("/proc/self/loginuid", F_OK) == 0;

	if (geteuid() != 0)
		zt_fail("must start as root (it sets its loginuid and drops to uid %d)", NOBODY);
	write_self("/proc/self/oom_score_adj", OOM_ADJ);
	if (audit)
		write_self("/proc/self/loginuid", LOGINUID);
	else
		zt_info("no /proc/self/loginuid on this kernel: loginuid not tested");
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) != 0) {
		if (errno != EINVAL)
			zt_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
		thp_want = 1; /* before Linux 6.18: no flags */
		if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
			zt_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		zt_fail("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		zt_fail("MEMBARRIER_CMD_PRIVATE_EXPEDITED works before registering");
	if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
		zt_fail("MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: %s", strerror(errno));
	(void)membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ); /* needs CONFIG_RSEQ */
	barriers = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS);
	if (barriers < 0)
		zt_fail("MEMBARRIER_CMD_GET_REGISTRATIONS: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		if (setrlimit(limits[i].res, &limits[i].lim) != 0)
			zt_fail("setrlimit(%d): %s", limits[i].res, strerror(errno));
	if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) != 0)
		zt_fail("cannot become uid/gid %d: %s", NOBODY, strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		zt_fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

	zt_ready();
	zt_wait_stop();

	if (read_number("/proc/self/oom_score_adj") != OOM_ADJ)
		zt_fail("oom_score_adj is %ld, expected %d", read_number("/proc/self/oom_score_adj"), OOM_ADJ);
	if (audit && read_number("/proc/self/loginuid") != LOGINUID)
		zt_fail("loginuid is %ld, expected %d", read_number("/proc/self/loginuid"), LOGINUID);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != thp_want)
		zt_fail("PR_GET_THP_DISABLE is %d, expected %d", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), thp_want);
	if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) != 0 || subreaper != 1)
		zt_fail("not a child subreaper any more (%d)", subreaper);
	if (membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS) != barriers)
		zt_fail("membarrier registrations are %#lx, were %#lx", membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS),
			barriers);
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
		zt_fail("MEMBARRIER_CMD_PRIVATE_EXPEDITED: %s", strerror(errno));
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		zt_fail("no_new_privs is not set");
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit now;

		if (getrlimit(limits[i].res, &now) != 0)
			zt_fail("getrlimit(%d): %s", limits[i].res, strerror(errno));
		if (now.rlim_cur != limits[i].lim.rlim_cur || now.rlim_max != limits[i].lim.rlim_max)
			zt_fail("rlimit %d is %llu/%llu, expected %llu/%llu", limits[i].res,
				(unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
				(unsigned long long)limits[i].lim.rlim_cur, (unsigned long long)limits[i].lim.rlim_max);
	}
	if (getresuid(&r, &e, &s) != 0 || r != NOBODY || e != NOBODY || s != NOBODY)
		zt_fail("uids are %d/%d/%d, expected %d", (int)r, (int)e, (int)s, NOBODY);
	zt_pass();
}
