/* fdkinds.c - holds one descriptor of each kind it is asked for (all kinds by default).
 *
 * Usage: zt_fdkinds [KIND...]. Used by tests/refusals.py, which checks that ckpt dump
 * names each of these kinds (saved, or refused with the kind's own message, never as
 * an unknown kind) and leaves the process unharmed.
 *
 * Before READY: opens the descriptors and writes fdkinds.txt in the work directory,
 * one line per kind: "KIND FD" or "KIND - reason" when this machine cannot create it
 * (e.g. io_uring disabled by sysctl).
 * After SIGTERM: every descriptor is still open and still the same file (fstat matches).
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/landlock.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <linux/netlink.h>
#include <unistd.h>

#define MAX_FDS 64

static int fds[MAX_FDS];
static struct stat sts[MAX_FDS];
static int nfds;
static FILE *report;

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int bpf_map(void)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	return (int)sys_bpf(BPF_MAP_CREATE, &a);
}

static int bpf_prog(void)
{
	/* r0 = 0; exit */
	struct bpf_insn insns[2];
	union bpf_attr a;

	memset(insns, 0, sizeof(insns));
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
	insns[0].dst_reg = 0;
	insns[1].code = BPF_JMP | BPF_EXIT;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = 2;
	a.license = (uint64_t)(uintptr_t)"GPL";
	return (int)sys_bpf(BPF_PROG_LOAD, &a);
}

static int perf_event(void)
{
	struct perf_event_attr a;

	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof(a);
	a.config = PERF_COUNT_SW_TASK_CLOCK;
	a.disabled = 1;
	return (int)syscall(__NR_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static int io_uring(void)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	return (int)syscall(__NR_io_uring_setup, 4, &p);
}

static int signal_fd(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	return signalfd(-1, &s, SFD_CLOEXEC);
}

static int timer_fd(void)
{
	struct itimerspec its = { { 1000, 0 }, { 1000, 0 } };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);

	if (fd >= 0 && timerfd_settime(fd, 0, &its, NULL) != 0)
		return -1;
	return fd;
}

static int epoll_fd(void)
{
	return epoll_create1(EPOLL_CLOEXEC);
}

static int inotify_fd(void)
{
	int fd = inotify_init1(IN_CLOEXEC);

	if (fd >= 0 && inotify_add_watch(fd, ".", IN_CREATE) < 0)
		return -1;
	return fd;
}

static int fanotify_fd(void)
{
	return fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
}

static int pid_fd(void)
{
	return (int)syscall(__NR_pidfd_open, getpid(), 0);
}

static int uffd(void)
{
	return (int)syscall(__NR_userfaultfd, O_CLOEXEC);
}

static int memfd(void)
{
	return memfd_create("zt-fdkinds", MFD_CLOEXEC);
}

static int memfd_secret(void)
{
	return (int)syscall(__NR_memfd_secret, 0);
}

static int sock_unix(void)
{
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static int sock_inet(void)
{
	return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static int sock_netlink(void)
{
	return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
}

static int pipe_fd(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	close(p[1]);
	return p[0];
}

static int fifo(void)
{
	if (mkfifo("zt-fifo", 0600) != 0 && errno != EEXIST)
		return -1;
	return open("zt-fifo", O_RDWR | O_CLOEXEC); /* O_RDWR: no writer needed */
}

static int devnull(void)
{
	return open("/dev/null", O_RDWR | O_CLOEXEC);
}

static int regular(void)
{
	return open("zt-regular", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

static int directory(void)
{
	return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int ptmx(void)
{
	return posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
}

static int pty(void)
{
	/* A terminal slave whose master the harness holds (given as stdin, as for
	 * zt_read_tty): a pty master inside the target is a kind of its own (ptmx). */
	if (!isatty(0))
		return -1;
	return fcntl(0, F_DUPFD_CLOEXEC, 3);
}

static int nsfs(void)
{
	return open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
}

static int mqueue(void)
{
	struct mq_attr a = { .mq_maxmsg = 1, .mq_msgsize = 16 };
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "/zt-fdkinds-%d", getpid());
	fd = mq_open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600, &a);
	if (fd >= 0)
		mq_unlink(name);
	return fd;
}

static int fscontext(void)
{
	return (int)syscall(__NR_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
}

static int landlock(void)
{
	struct landlock_ruleset_attr a = { .handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE };

	return (int)syscall(__NR_landlock_create_ruleset, &a, sizeof(a), 0);
}

struct kind {
	const char *name;
	int (*open)(void);
};

static const struct kind kinds[] = {
	{ "eventfd", NULL }, /* eventfd() takes arguments: special-cased below */
	{ "epoll", epoll_fd },
	{ "signalfd", signal_fd },
	{ "timerfd", timer_fd },
	{ "inotify", inotify_fd },
	{ "fanotify", fanotify_fd },
	{ "pidfd", pid_fd },
	{ "userfaultfd", uffd },
	{ "io_uring", io_uring },
	{ "perf_event", perf_event },
	{ "bpf-map", bpf_map },
	{ "bpf-prog", bpf_prog },
	{ "memfd", memfd },
	{ "memfd_secret", memfd_secret },
	{ "socket-unix", sock_unix },
	{ "socket-inet", sock_inet },
	{ "socket-netlink", sock_netlink },
	{ "pipe", pipe_fd },
	{ "fifo", fifo },
	{ "devnull", devnull },
	{ "regular", regular },
	{ "directory", directory },
	{ "ptmx", ptmx },
	{ "pty", pty },
	{ "nsfs", nsfs },
	{ "mqueue", mqueue },
	{ "fscontext", fscontext },
	{ "landlock", landlock },
};

static void open_kind(const struct kind *k)
{
	int fd = k->open ? k->open() : eventfd(0, EFD_CLOEXEC);

	if (fd < 0) {
		fprintf(report, "%s - %s\n", k->name, strerror(errno));
		return;
	}
	if (nfds == MAX_FDS)
		zt_fail("too many descriptors");
	if (fstat(fd, &sts[nfds]) != 0)
		zt_fail("fstat of the %s descriptor: %s", k->name, strerror(errno));
	fds[nfds++] = fd;
	fprintf(report, "%s %d\n", k->name, fd);
}

int main(int argc, char **argv)
{
	size_t nk = sizeof(kinds) / sizeof(kinds[0]);

	report = fopen("fdkinds.txt", "we");
	if (!report)
		zt_fail("cannot create fdkinds.txt: %s", strerror(errno));
	if (argc < 2) {
		for (size_t i = 0; i < nk; i++)
			open_kind(&kinds[i]);
	}
	for (int a = 1; a < argc; a++) {
		size_t i;
		for (i = 0; i < nk && strcmp(kinds[i].name, argv[a]) != 0; i++)
			;
		if (i == nk)
			zt_fail("unknown kind %s", argv[a]);
		open_kind(&kinds[i]);
	}
	if (fclose(report) != 0)
		zt_fail("cannot write fdkinds.txt: %s", strerror(errno));
	zt_ready();
	zt_wait_stop();
	for (int i = 0; i < nfds; i++) {
		struct stat st;
		if (fstat(fds[i], &st) != 0)
			zt_fail("fd %d is no longer open: %s", fds[i], strerror(errno));
		if (st.st_dev != sts[i].st_dev || st.st_ino != sts[i].st_ino)
			zt_fail("fd %d now refers to another file", fds[i]);
	}
	zt_pass();
}
