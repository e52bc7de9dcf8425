/* env.c - process environment: argv, environ, cwd, umask, rlimits, comm, pids.
 *
 * On first start it re-execs itself (same pid) with known arguments and extra
 * environment variables. Then, before READY: setenv()/unsetenv() at run time,
 * chdir into a subdirectory it creates, umask(027), RLIMIT_NOFILE soft lowered,
 * RLIMIT_CORE soft and hard set, RLIMIT_STACK soft lowered, PR_SET_NAME; it
 * records /proc/self/cmdline, /proc/self/environ, all rlimits, the cwd and pids.
 * After SIGTERM all of it must be unchanged, and the pid must be the same.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

#define REEXEC_FLAG "--zt-reexec"
static const char *const exp_args[] = { REEXEC_FLAG, "two words", "", "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9", "-x=1" };
#define NARGS (sizeof(exp_args) / sizeof(exp_args[0]))
static const char *const extra_env[] = {
	"ZT_ENV_A=alpha", "ZT_ENV_EMPTY=", "ZT_ENV_SPACES=a b  c", "ZT_ENV_UTF8=\xc3\xb1", "ZT_ENV_DROP=dropped",
};
#define NEXTRA (sizeof(extra_env) / sizeof(extra_env[0]))

#define SUBDIR "sub dir \xc3\xa9"
#define COMM "zt-env-name"

static char cmdline_before[1 << 16], environ_before[1 << 16], cwd_before[PATH_MAX];
static long cmdline_len, environ_len;
static struct rlimit rl_before[RLIM_NLIMITS];

static void reexec(char **argv)
{
	size_t n = 0;
	char **env;
	const char *nargv[NARGS + 2];

	while (environ[n])
		n++;
	env = calloc(n + NEXTRA + 1, sizeof(char *));
	if (!env)
		zt_fail("calloc");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "ZT_ENV_", 7) != 0)
			env[k++] = environ[i];
	for (size_t i = 0; i < NEXTRA; i++)
		env[k++] = (char *)extra_env[i];
	env[k] = NULL;
	nargv[0] = argv[0];
	for (size_t i = 0; i < NARGS; i++)
		nargv[i + 1] = exp_args[i];
	nargv[NARGS + 1] = NULL;
	execve("/proc/self/exe", (char *const *)nargv, env);
	zt_fail("execve(/proc/self/exe): %s", strerror(errno));
}

static void check_args(int argc, char **argv, const char *when)
{
	if (argc != (int)NARGS + 1)
		zt_fail("%s: argc %d, expected %d", when, argc, (int)NARGS + 1);
	for (size_t i = 0; i < NARGS; i++)
		if (strcmp(argv[i + 1], exp_args[i]) != 0)
			zt_fail("%s: argv[%zu] is '%s', expected '%s'", when, i + 1, argv[i + 1], exp_args[i]);
	if (argv[argc] != NULL)
		zt_fail("%s: argv not NULL-terminated", when);
}

static void check_env(const char *name, const char *want)
{
	const char *v = getenv(name);
	if (!want && v)
		zt_fail("getenv(%s) = '%s', expected unset", name, v);
	if (want && (!v || strcmp(v, want) != 0))
		zt_fail("getenv(%s) = %s%s%s, expected '%s'", name, v ? "'" : "", v ? v : "(unset)", v ? "'" : "", want);
}

static void set_rlimit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = { soft, hard };
	if (setrlimit(res, &rl) != 0)
		zt_fail("setrlimit(%d, %llu, %llu): %s", res, (unsigned long long)soft, (unsigned long long)hard,
			strerror(errno));
}

static long status_field(const char *name)
{
	static char buf[8192];
	long n = zt_read_file("/proc/self/status", buf, sizeof(buf) - 1);
	size_t l = strlen(name);

	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, l) == 0 && p[l] == ':')
			return strtol(p + l + 1, NULL, name[0] == 'U' ? 8 : 10);
	return -1;
}

int main(int argc, char **argv)
{
	pid_t pid0, ppid0;
	struct stat cwd_st, st;
	char buf[1 << 16];
	long n;

	if (argc < 2 || strcmp(argv[1], REEXEC_FLAG) != 0)
		reexec(argv);
	check_args(argc, argv, "after re-exec");
	pid0 = getpid();
	ppid0 = getppid();

	if (setenv("ZT_SETENV", "set at run time", 1) != 0 || unsetenv("ZT_ENV_DROP") != 0)
		zt_fail("setenv/unsetenv: %s", strerror(errno));
	if (mkdir(SUBDIR, 0755) != 0 && errno != EEXIST)
		zt_fail("mkdir(%s): %s", SUBDIR, strerror(errno));
	if (chdir(SUBDIR) != 0)
		zt_fail("chdir(%s): %s", SUBDIR, strerror(errno));
	if (!getcwd(cwd_before, sizeof(cwd_before)) || stat(".", &cwd_st) != 0)
		zt_fail("getcwd/stat: %s", strerror(errno));
	umask(027);

	{
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_max < 300)
			zt_fail("RLIMIT_NOFILE hard limit %llu too low for this test", (unsigned long long)rl.rlim_max);
		set_rlimit(RLIMIT_NOFILE, 200, rl.rlim_max);
		getrlimit(RLIMIT_STACK, &rl);
		set_rlimit(RLIMIT_STACK, 6 << 20, rl.rlim_max);
		/* as root: soft and hard both set to odd values (raising the hard limit needs privilege) */
		if (geteuid() == 0)
			set_rlimit(RLIMIT_CORE, 1 << 20, (2 << 20) + 4096);
		else
			set_rlimit(RLIMIT_CORE, 0, 0);
	}
	for (int r = 0; r < RLIM_NLIMITS; r++)
		if (getrlimit(r, &rl_before[r]) != 0)
			zt_fail("getrlimit(%d): %s", r, strerror(errno));
	if (prctl(PR_SET_NAME, COMM, 0, 0, 0) != 0)
		zt_fail("PR_SET_NAME: %s", strerror(errno));

	cmdline_len = zt_read_file("/proc/self/cmdline", cmdline_before, sizeof(cmdline_before));
	environ_len = zt_read_file("/proc/self/environ", environ_before, sizeof(environ_before));
	if (cmdline_len <= 0 || environ_len <= 0)
		zt_fail("reading /proc/self/cmdline or environ");
	/* the kernel's view of the environment is the exec-time one: it has ZT_ENV_DROP */
	if (!memmem(environ_before, (size_t)environ_len, "ZT_ENV_DROP=dropped", 20))
		zt_fail("/proc/self/environ lacks the exec-time ZT_ENV_DROP");

	zt_ready();
	zt_wait_stop();

	/* pids */
	if (getpid() != pid0 || syscall(SYS_getpid) != pid0 || syscall(SYS_gettid) != pid0)
		zt_fail("pid changed: getpid %d, SYS_getpid %ld, gettid %ld, was %d", (int)getpid(),
			(long)syscall(SYS_getpid), (long)syscall(SYS_gettid), (int)pid0);
	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0 || (buf[n] = '\0', atoi(buf) != pid0))
		zt_fail("/proc/self is '%s', expected %d", n > 0 ? buf : "?", (int)pid0);
	{
		pid_t pp = getppid();
		/* the parent may legitimately change across a restore; it must be sane */
		if (pp <= 0 || pp == pid0 || kill(pp, 0) != 0 || status_field("PPid") != pp)
			zt_fail("getppid() = %d is not sane (was %d, status PPid %ld)", (int)pp, (int)ppid0,
				status_field("PPid"));
	}

	/* argv and environment */
	check_args(argc, argv, "after the dump");
	check_env("ZT_ENV_A", "alpha");
	check_env("ZT_ENV_EMPTY", "");
	check_env("ZT_ENV_SPACES", "a b  c");
	check_env("ZT_ENV_UTF8", "\xc3\xb1");
	check_env("ZT_SETENV", "set at run time");
	check_env("ZT_ENV_DROP", NULL);
	n = zt_read_file("/proc/self/cmdline", buf, sizeof(buf));
	if (n != cmdline_len || memcmp(buf, cmdline_before, (size_t)n) != 0)
		zt_fail("/proc/self/cmdline differs (%ld bytes, %ld before)", n, cmdline_len);
	{
		/* and it is the argv we exec'ed with */
		char *p = buf;
		if (strcmp(p, argv[0]) != 0)
			zt_fail("/proc/self/cmdline argv[0] '%s' != '%s'", p, argv[0]);
		for (size_t i = 0; i < NARGS; i++) {
			p += strlen(p) + 1;
			if (p >= buf + n || strcmp(p, exp_args[i]) != 0)
				zt_fail("/proc/self/cmdline argument %zu wrong", i + 1);
		}
		if (p + strlen(p) + 1 != buf + n)
			zt_fail("/proc/self/cmdline has trailing data");
	}
	n = zt_read_file("/proc/self/environ", buf, sizeof(buf));
	if (n != environ_len || memcmp(buf, environ_before, (size_t)n) != 0)
		zt_fail("/proc/self/environ differs (%ld bytes, %ld before)", n, environ_len);
	for (size_t i = 0; i < NEXTRA; i++)
		if (!memmem(buf, (size_t)n, extra_env[i], strlen(extra_env[i]) + 1))
			zt_fail("/proc/self/environ lacks %s", extra_env[i]);

	/* cwd */
	if (!getcwd(buf, sizeof(buf)))
		zt_fail("getcwd: %s", strerror(errno));
	if (strcmp(buf, cwd_before) != 0)
		zt_fail("cwd is '%s', was '%s'", buf, cwd_before);
	if (stat(".", &st) != 0 || st.st_ino != cwd_st.st_ino || st.st_dev != cwd_st.st_dev)
		zt_fail("cwd is another directory (inode)");

	/* umask */
	{
		mode_t m = umask(0);
		umask(m);
		if (m != 027)
			zt_fail("umask %03o, expected 027", (unsigned)m);
		if (status_field("Umask") != 027)
			zt_fail("/proc/self/status Umask %lo, expected 027", status_field("Umask"));
	}

	/* rlimits */
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit rl;
		if (getrlimit(r, &rl) != 0)
			zt_fail("getrlimit(%d): %s", r, strerror(errno));
		if (rl.rlim_cur != rl_before[r].rlim_cur || rl.rlim_max != rl_before[r].rlim_max)
			zt_fail("rlimit %d is %llu/%llu, was %llu/%llu", r, (unsigned long long)rl.rlim_cur,
				(unsigned long long)rl.rlim_max, (unsigned long long)rl_before[r].rlim_cur,
				(unsigned long long)rl_before[r].rlim_max);
	}
	if (rl_before[RLIMIT_NOFILE].rlim_cur != 200 || rl_before[RLIMIT_STACK].rlim_cur != (6 << 20))
		zt_fail("rlimit setup not as intended");

	/* comm */
	{
		char name[17] = { 0 };
		if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0 || strcmp(name, COMM) != 0)
			zt_fail("comm is '%s', expected '%s'", name, COMM);
	}
	zt_pass();
}
