/* hold.c - holds one kind of process state that ckpt must refuse (or, for a few kinds,
 * must accept), for tests/refusals.py.
 *
 * Usage: zt_hold KIND [ARG]. Before READY the state is set up; after SIGTERM the program
 * checks that the state is still there, exactly as set up (a refused dump must not have
 * touched it), cleans up and passes.
 *
 * Kinds: child, zombie, timer, posix-lock, flock, ofd-lock, lease (a read lease on a file it
 * owns), seccomp, nnp,
 * ns-net, ns-uts, ns-ipc, ns-mnt, ns-cgroup, ns-user, ns-pid, ns-time (unshare; ns-pid
 * and ns-time change only the namespace of future children), tracer PID (ptrace-seizes
 * PID, a process that is not its child), droppable (MAP_DROPPABLE), sealed (mseal),
 * none (nothing: for a deleted executable), cwd-deleted (cwd removed), chroot (into a
 * subdirectory of the work directory), capbset (CAP_SYS_BOOT dropped from the bounding set), uffd-range (a range registered with userfaultfd for missing pages),
 * personality (ADDR_NO_RANDOMIZE set after start: saved and restored, not refused),
 * vfork (the process waits in vfork() while its child sleeps before exec: the child, which
 * shares its memory, writes READY, and execs /bin/true once SIGTERM is pending for the
 * parent), traced-child (a child traced with PTRACE_SEIZE by its sibling, another child),
 * ctty-child (a child leading its own session, stdin's terminal its controlling one),
 * tcp-outside PORT (a TCP connection to 127.0.0.1:PORT, whose other end is outside the tree),
 * pty-typed (a pty pair whose slave has a line typed into it and not read: "abc\n"),
 * epoll-foreign (the process's epoll watches an eventfd that only its child still holds,
 * and the child does not hold the epoll: no process could register it again).
 * Exit 2 with "SKIP: reason" if the machine cannot create the state.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef __NR_mseal
#define __NR_mseal 462
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const char *kind;
static pid_t child = -1;
static int epoll_fd = -1;
static timer_t timer;
static int lock_fd = -1;
static int lease_fd = -1;
static int pty_slave_fd = -1;
static int tcp_client = -1;
static pid_t tracee = -1;
static pid_t tracer_kid = -1; /* traced-child: the child that traces `child` */
static volatile int ready_written; /* vfork: READY came from the child (shared memory) */
static char *region;
static size_t region_len;
static char ns_path[64], ns_before[64];
static struct stat dir_before;

__attribute__((noreturn)) static void skip(const char *why)
{
	printf("SKIP: %s: %s\n", kind, why);
	fflush(stdout);
	exit(2);
}

static void read_link(const char *path, char *buf, size_t cap)
{
	ssize_t n = readlink(path, buf, cap - 1);
	if (n < 0)
		zt_fail("readlink %s: %s", path, strerror(errno));
	buf[n] = 0;
}

/* In a child: can this open file description take a conflicting lock? 0 = no (held). */
static void check_lock_held(void)
{
	pid_t p = fork();
	if (p < 0)
		zt_fail("fork: %s", strerror(errno));
	if (p == 0) {
		int fd = open("zt-lockfile", O_RDWR);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		if (fd < 0)
			_exit(3);
		if (!strcmp(kind, "flock"))
			_exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 1 : 0);
		if (!strcmp(kind, "ofd-lock"))
			_exit(fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 1 : 0);
		_exit(fcntl(fd, F_SETLK, &fl) == 0 ? 1 : 0);
	}
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st))
		zt_fail("lock checker did not exit normally");
	if (WEXITSTATUS(st) != 0)
		zt_fail("the %s lock is no longer held (checker status %d)", kind, WEXITSTATUS(st));
}

/* vfork child: 1 once SIGTERM is pending for the (blocked) parent, or the parent is gone. */
static int parent_told(pid_t parent)
{
	char path[64], buf[4096], *p;
	long n;

	if (getppid() != parent)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)parent);
	n = zt_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 1;
	buf[n] = 0;
	p = strstr(buf, "\nShdPnd:");
	return p && (strtoull(p + 9, NULL, 16) & (1ULL << (SIGTERM - 1)));
}

/* traced-child: the tracer child seizes `child` and keeps it until SIGTERM, then detaches. */
static void tracer_main(int sync_w)
{
	int st;

	if (ptrace(PTRACE_SEIZE, child, NULL, NULL) != 0) {
		(void)!write(sync_w, "E", 1);
		_exit(1);
	}
	(void)!write(sync_w, "s", 1);
	close(sync_w);
	zt_wait_stop();
	if (ptrace(PTRACE_INTERRUPT, child, NULL, NULL) != 0 || waitpid(child, &st, __WALL) != child ||
	    ptrace(PTRACE_DETACH, child, NULL, NULL) != 0)
		_exit(3);
	_exit(0);
}

static void setup(const char *arg)
{
	if (!strcmp(kind, "child")) {
		child = fork();
		if (child < 0)
			zt_fail("fork: %s", strerror(errno));
		if (child == 0) {
			for (;;)
				pause();
		}
	} else if (!strcmp(kind, "ctty-child")) {
		/* a child leading its own session, with stdin's terminal as its controlling one */
		int sync[2];
		char c = 0;
		const char *tty = ttyname(0);
		if (!tty)
			zt_fail("ctty-child needs a terminal as stdin");
		if (pipe2(sync, O_CLOEXEC) != 0)
			zt_fail("pipe2: %s", strerror(errno));
		child = fork();
		if (child < 0)
			zt_fail("fork: %s", strerror(errno));
		if (child == 0) {
			if (setsid() < 0 || open(tty, O_RDWR) < 0 || write(sync[1], "x", 1) != 1)
				_exit(2);
			for (;;)
				pause();
		}
		close(sync[1]);
		if (read(sync[0], &c, 1) != 1)
			zt_fail("the child could not take %s as its controlling terminal", tty);
		close(sync[0]);
	} else if (!strcmp(kind, "epoll-foreign")) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
		int sync[2];
		char c = 0;
		epoll_fd = epoll_create1(EPOLL_CLOEXEC);
		int efd = eventfd(1, EFD_CLOEXEC);
		if (epoll_fd < 0 || efd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, efd, &ev) != 0 || pipe2(sync, O_CLOEXEC) != 0)
			zt_fail("epoll/eventfd: %s", strerror(errno));
		child = fork();
		if (child < 0)
			zt_fail("fork: %s", strerror(errno));
		if (child == 0) {
			close(epoll_fd);
			if (write(sync[1], "x", 1) != 1)
				_exit(2);
			for (;;)
				pause();
		}
		close(sync[1]);
		if (read(sync[0], &c, 1) != 1)
			zt_fail("the child did not start");
		close(sync[0]);
		close(efd);
	} else if (!strcmp(kind, "zombie")) {
		siginfo_t si;
		child = fork();
		if (child < 0)
			zt_fail("fork: %s", strerror(errno));
		if (child == 0)
			_exit(7);
		/* wait until it is a zombie, without reaping it */
		if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT) != 0)
			zt_fail("waitid: %s", strerror(errno));
	} else if (!strcmp(kind, "vfork")) {
		pid_t parent = getpid();
		child = vfork();
		if (child < 0)
			zt_fail("vfork: %s", strerror(errno));
		if (child == 0) {
			/* only async-signal-safe calls and one shared flag: we run on the parent's memory */
			ready_written = 1;
			zt_ready();
			while (!parent_told(parent)) {
				struct timespec ts = { 0, 10 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
	} else if (!strcmp(kind, "traced-child")) {
		int sync[2];
		char c = 0;
		if (pipe2(sync, O_CLOEXEC) != 0)
			zt_fail("pipe2: %s", strerror(errno));
		child = fork();
		if (child < 0)
			zt_fail("fork: %s", strerror(errno));
		if (child == 0) {
			close(sync[0]);
			prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* for Yama scope 1; EINVAL without Yama */
			(void)!write(sync[1], "t", 1);
			close(sync[1]);
			for (;;)
				pause();
		}
		if (read(sync[0], &c, 1) != 1 || c != 't')
			zt_fail("the tracee did not start");
		tracer_kid = fork();
		if (tracer_kid < 0)
			zt_fail("fork: %s", strerror(errno));
		if (tracer_kid == 0) {
			close(sync[0]);
			tracer_main(sync[1]);
		}
		close(sync[1]);
		if (read(sync[0], &c, 1) != 1 || c != 's') {
			kill(child, SIGKILL);
			kill(tracer_kid, SIGKILL);
			waitpid(child, NULL, 0);
			waitpid(tracer_kid, NULL, 0);
			skip("a child cannot PTRACE_SEIZE its sibling here");
		}
		close(sync[0]);
	} else if (!strcmp(kind, "timer")) {
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
		struct itimerspec its = { { 1000, 0 }, { 1000, 0 } };
		if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0 || timer_settime(timer, 0, &its, NULL) != 0)
			zt_fail("timer_create/settime: %s", strerror(errno));
	} else if (!strcmp(kind, "tcp-outside")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (!arg)
			zt_fail("tcp-outside needs the port to connect to");
		a.sin_port = htons((uint16_t)atoi(arg));
		tcp_client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (tcp_client < 0 || connect(tcp_client, (struct sockaddr *)&a, sizeof(a)) != 0)
			zt_fail("connect to port %s: %s", arg, strerror(errno));
	} else if (!strcmp(kind, "pty-typed")) {
		char name[64];
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof(name)) != 0)
			zt_fail("opening a pty pair: %s", strerror(errno));
		pty_slave_fd = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (pty_slave_fd < 0 || write(m, "abc\n", 4) != 4)
			zt_fail("open %s / type into it: %s", name, strerror(errno));
		for (int i = 0; i < 1000; i++) { /* the line discipline takes it in shortly */
			int n = 0;
			if (ioctl(pty_slave_fd, FIONREAD, &n) == 0 && n == 4)
				break;
			zt_sleep_ms(1);
		}
	} else if (!strcmp(kind, "lease")) {
		int fd = open("zt-leasefile", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			zt_fail("open zt-leasefile: %s", strerror(errno));
		close(fd);
		lease_fd = open("zt-leasefile", O_RDONLY | O_CLOEXEC);
		if (lease_fd < 0 || fcntl(lease_fd, F_SETLEASE, F_RDLCK) != 0)
			zt_fail("F_SETLEASE: %s", strerror(errno));
	} else if (!strcmp(kind, "posix-lock") || !strcmp(kind, "flock") || !strcmp(kind, "ofd-lock")) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int r;
		lock_fd = open("zt-lockfile", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lock_fd < 0)
			zt_fail("open zt-lockfile: %s", strerror(errno));
		if (!strcmp(kind, "flock"))
			r = flock(lock_fd, LOCK_EX);
		else
			r = fcntl(lock_fd, !strcmp(kind, "ofd-lock") ? F_OFD_SETLK : F_SETLK, &fl);
		if (r != 0)
			zt_fail("taking the %s lock: %s", kind, strerror(errno));
	} else if (!strcmp(kind, "seccomp") || !strcmp(kind, "nnp")) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
			zt_fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		if (!strcmp(kind, "seccomp")) {
			struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
			struct sock_fprog prog = { .len = 1, .filter = f };
			if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
				zt_fail("seccomp: %s", strerror(errno));
		}
	} else if (!strncmp(kind, "ns-", 3)) {
		static const struct { const char *name, *file; int flag; } ns[] = {
			{ "net", "net", CLONE_NEWNET }, { "uts", "uts", CLONE_NEWUTS },
			{ "ipc", "ipc", CLONE_NEWIPC }, { "mnt", "mnt", CLONE_NEWNS },
			{ "cgroup", "cgroup", CLONE_NEWCGROUP }, { "user", "user", CLONE_NEWUSER },
			{ "pid", "pid_for_children", CLONE_NEWPID },
			{ "time", "time_for_children", CLONE_NEWTIME },
		};
		size_t i;
		for (i = 0; i < sizeof(ns) / sizeof(ns[0]) && strcmp(ns[i].name, kind + 3); i++)
			;
		if (i == sizeof(ns) / sizeof(ns[0]))
			zt_fail("unknown namespace kind %s", kind);
		snprintf(ns_path, sizeof(ns_path), "/proc/self/ns/%s", ns[i].file);
		if (access(ns_path, F_OK) != 0)
			skip("this kernel has no such namespace");
		read_link(ns_path, ns_before, sizeof(ns_before));
		if (unshare(ns[i].flag) != 0) {
			if (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EUSERS)
				skip(strerror(errno));
			zt_fail("unshare: %s", strerror(errno));
		}
	} else if (!strcmp(kind, "tracer")) {
		if (!arg)
			zt_fail("tracer needs the pid to trace");
		tracee = (pid_t)atoi(arg);
		if (ptrace(PTRACE_SEIZE, tracee, NULL, NULL) != 0)
			zt_fail("PTRACE_SEIZE %d: %s", (int)tracee, strerror(errno));
		/* a seized tracee runs on: nothing to wait for */
	} else if (!strcmp(kind, "droppable") || !strcmp(kind, "sealed")) {
		/* MAP_DROPPABLE is a mapping type of its own, in place of MAP_PRIVATE */
		int flags = MAP_ANONYMOUS | (!strcmp(kind, "droppable") ? MAP_DROPPABLE : MAP_PRIVATE);
		region_len = 4 * 4096;
		region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, flags, -1, 0);
		if (region == MAP_FAILED) {
			if (errno == EINVAL)
				skip("MAP_DROPPABLE not supported by this kernel");
			zt_fail("mmap: %s", strerror(errno));
		}
		memset(region, 0x5a, region_len);
		if (!strcmp(kind, "sealed") && syscall(__NR_mseal, region, region_len, 0) != 0) {
			if (errno == ENOSYS || errno == EPERM)
				skip("mseal not supported by this kernel");
			zt_fail("mseal: %s", strerror(errno));
		}
	} else if (!strcmp(kind, "none")) {
	} else if (!strcmp(kind, "cwd-deleted") || !strcmp(kind, "chroot")) {
		if (mkdir("zt-dir", 0700) != 0 || stat("zt-dir", &dir_before) != 0)
			zt_fail("mkdir zt-dir: %s", strerror(errno));
		if (!strcmp(kind, "chroot")) {
			if (chroot("zt-dir") != 0 || chdir("/") != 0)
				zt_fail("chroot: %s", strerror(errno));
		} else if (chdir("zt-dir") != 0 || rmdir("../zt-dir") != 0) {
			zt_fail("chdir/rmdir: %s", strerror(errno));
		}
	} else if (!strcmp(kind, "capbset")) {
		if (prctl(PR_CAPBSET_DROP, 22 /* CAP_SYS_BOOT */, 0, 0, 0) != 0)
			zt_fail("PR_CAPBSET_DROP: %s", strerror(errno));
	} else if (!strcmp(kind, "uffd-range")) {
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg;
		int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
		if (uffd < 0)
			skip(strerror(errno));
		if (ioctl(uffd, UFFDIO_API, &api) != 0)
			zt_fail("UFFDIO_API: %s", strerror(errno));
		region_len = 4 * 4096;
		region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED)
			zt_fail("mmap: %s", strerror(errno));
		memset(&reg, 0, sizeof(reg));
		reg.range.start = (uintptr_t)region;
		reg.range.len = region_len;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
			zt_fail("UFFDIO_REGISTER: %s", strerror(errno));
		/* never touched: a fault would wait for a handler that does not exist */
	} else if (!strcmp(kind, "personality")) {
		if (personality(ADDR_NO_RANDOMIZE) < 0)
			zt_fail("personality: %s", strerror(errno));
	} else {
		zt_fail("unknown kind %s", kind);
	}
}

static void check(void)
{
	if (!strcmp(kind, "epoll-foreign")) {
		struct epoll_event ev;
		int st;
		if (epoll_wait(epoll_fd, &ev, 1, 0) != 1 || ev.data.u64 != 42)
			zt_fail("the epoll no longer reports the child's eventfd");
		kill(child, SIGKILL);
		if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st))
			zt_fail("the child %d did not die of SIGKILL", (int)child);
	} else if (!strcmp(kind, "child") || !strcmp(kind, "ctty-child")) {
		int st;
		if (waitpid(child, &st, WNOHANG) != 0)
			zt_fail("the child %d is gone", (int)child);
		kill(child, SIGKILL);
		if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st))
			zt_fail("the child %d did not die of SIGKILL", (int)child);
	} else if (!strcmp(kind, "zombie")) {
		int st;
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
			zt_fail("the zombie %d did not report exit code 7", (int)child);
	} else if (!strcmp(kind, "vfork")) {
		int st;
		/* vfork() returned: the child exec'd /bin/true (127: the exec failed) */
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			zt_fail("the vfork child %d did not exec /bin/true and exit 0 (wait status %#x)", (int)child, st);
	} else if (!strcmp(kind, "traced-child")) {
		char path[64], buf[4096], *p;
		int st;
		long n;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)child);
		n = zt_read_file(path, buf, sizeof(buf) - 1);
		if (n < 0)
			zt_fail("the tracee %d is gone", (int)child);
		buf[n] = 0;
		p = strstr(buf, "\nTracerPid:");
		if (!p || atoi(p + 11) != tracer_kid)
			zt_fail("the tracee %d is no longer traced by its sibling %d", (int)child, (int)tracer_kid);
		kill(tracer_kid, SIGTERM);
		if (waitpid(tracer_kid, &st, 0) != tracer_kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			zt_fail("the tracer %d did not detach and exit 0 (wait status %#x)", (int)tracer_kid, st);
		kill(child, SIGKILL);
		if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
			zt_fail("the tracee %d did not die of SIGKILL", (int)child);
	} else if (!strcmp(kind, "timer")) {
		struct itimerspec its;
		if (timer_gettime(timer, &its) != 0)
			zt_fail("timer_gettime: %s", strerror(errno));
		if (its.it_interval.tv_sec != 1000 || its.it_value.tv_sec == 0 || its.it_value.tv_sec > 1000)
			zt_fail("the timer changed: interval %ld s, value %ld s", (long)its.it_interval.tv_sec,
				(long)its.it_value.tv_sec);
	} else if (lock_fd >= 0) {
		check_lock_held();
	} else if (tcp_client >= 0) {
		char b = 0;
		/* the other end echoes what it gets */
		if (write(tcp_client, "t", 1) != 1 || read(tcp_client, &b, 1) != 1 || b != 't')
			zt_fail("the TCP connection no longer carries data");
	} else if (pty_slave_fd >= 0) {
		char line[8];
		ssize_t n = read(pty_slave_fd, line, sizeof(line));
		if (n != 4 || memcmp(line, "abc\n", 4) != 0)
			zt_fail("the slave reads %zd bytes, expected the line \"abc\" typed before the dump", n);
	} else if (lease_fd >= 0) {
		if (fcntl(lease_fd, F_GETLEASE) != F_RDLCK)
			zt_fail("the read lease is gone");
	} else if (!strcmp(kind, "seccomp") || !strcmp(kind, "nnp")) {
		char buf[4096], *p;
		long n = zt_read_file("/proc/self/status", buf, sizeof(buf) - 1);
		if (n < 0)
			zt_fail("cannot read /proc/self/status");
		buf[n] = 0;
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			zt_fail("no_new_privs is no longer set");
		p = strstr(buf, "\nSeccomp:");
		if (!p)
			zt_fail("no Seccomp: line in /proc/self/status");
		if (atoi(p + 9) != (!strcmp(kind, "seccomp") ? 2 : 0))
			zt_fail("seccomp mode is now %d", atoi(p + 9));
	} else if (ns_path[0]) {
		char now[64];
		/* A new pid namespace has no pid_for_children link until its first process. */
		if (!strcmp(kind, "ns-pid") && readlink(ns_path, now, sizeof(now)) < 0 && errno == ENOENT)
			return;
		read_link(ns_path, now, sizeof(now));
		if (!strcmp(now, ns_before))
			zt_fail("%s is back to %s", ns_path, now);
	} else if (tracee > 0) {
		char path[64], buf[4096], *p;
		long n;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)tracee);
		n = zt_read_file(path, buf, sizeof(buf) - 1);
		if (n < 0)
			zt_fail("the tracee %d is gone", (int)tracee);
		buf[n] = 0;
		p = strstr(buf, "\nTracerPid:");
		if (!p || atoi(p + 11) != getpid())
			zt_fail("the tracee %d is no longer traced by us", (int)tracee);
		{
			/* detaching needs a ptrace stop: interrupt, wait, detach */
			int st;
			if (ptrace(PTRACE_INTERRUPT, tracee, NULL, NULL) != 0 || waitpid(tracee, &st, __WALL) != tracee ||
			    ptrace(PTRACE_DETACH, tracee, NULL, NULL) != 0)
				zt_fail("cannot detach the tracee %d: %s", (int)tracee, strerror(errno));
		}
	} else if (region) {
		uintptr_t s, e;
		char perms[5];
		if (zt_maps_lookup(region, &s, &e, perms) != 0 || strcmp(perms, "rw-p") != 0)
			zt_fail("the region at %p is gone or changed (%s)", (void *)region, perms);
		if (!strcmp(kind, "sealed")) {
			for (size_t i = 0; i < region_len; i++)
				if (region[i] != 0x5a)
					zt_fail("the sealed region changed at offset %zu", i);
			if (munmap(region, region_len) == 0)
				zt_fail("the region is no longer sealed (munmap worked)");
		}
	} else if (!strcmp(kind, "cwd-deleted") || !strcmp(kind, "chroot")) {
		struct stat st;
		if (stat(!strcmp(kind, "chroot") ? "/" : ".", &st) != 0)
			zt_fail("stat: %s", strerror(errno));
		if (st.st_dev != dir_before.st_dev || st.st_ino != dir_before.st_ino)
			zt_fail("the %s directory changed", !strcmp(kind, "chroot") ? "root" : "working");
	} else if (!strcmp(kind, "capbset")) {
		if (prctl(PR_CAPBSET_READ, 22, 0, 0, 0) != 0)
			zt_fail("CAP_SYS_BOOT is back in the bounding set");
	} else if (!strcmp(kind, "personality")) {
		if (personality(0xffffffff) != ADDR_NO_RANDOMIZE)
			zt_fail("personality is now %#x", personality(0xffffffff));
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		zt_fail("usage: zt_hold KIND [ARG]");
	kind = argv[1];
	setup(argc > 2 ? argv[2] : NULL);
	if (!ready_written)
		zt_ready();
	zt_wait_stop();
	check();
	zt_pass();
}
