// Records the /proc samples used by tests/unit/proc_parse_test.cpp. Not part of the build:
// run tests/unit/samples/record_samples.sh (as root) to regenerate them, then update the
// expected values in proc_parse_test.cpp from what this program prints (it prints what it
// knows from system calls, independently of the /proc text).
//
// The process puts itself into a known state first: comm "a b) (c" (spaces and parentheses),
// umask 027, nice -5 under SCHED_FIFO 7 (so that the stat priority is negative), a second
// thread, blocked and pending signals, distinct real/effective/saved/fs uids and gids,
// supplementary groups, a [heap], mappings of /dev/zero (shared: "/dev/zero (deleted)"),
// of a file whose path contains spaces and of a deleted file, anonymous mappings at fixed
// addresses with madvise flags (dd dc hg nh wf lo), and three open files for fdinfo.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/fsuid.h>
#include <grp.h>
#include <unistd.h>

static const char* outdir;
static const char* workdir;

static void die(const char* what) {
    fprintf(stderr, "record_samples: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int create_out(const char* name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) die(path);
    return out;
}

// Copies src into out (an output file opened before the credentials change).
static void copy_proc_to(const char* src, int out) {
    char buf[65536];
    int in = open(src, O_RDONLY);
    if (in < 0) die(src);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) die("write");
    if (n < 0) die("read");
    close(in);
    close(out);
}

static void copy_proc(const char* src, const char* name) { copy_proc_to(src, create_out(name)); }

static void* fixed_map(unsigned long addr, size_t len) {
    void* p = mmap((void*)addr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) die("mmap fixed");
    memset(p, 1, len);
    return p;
}

static void* sleeper(void* arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: record_samples OUTDIR WORKDIR\n");
        return 2;
    }
    outdir = argv[1];
    workdir = argv[2];
    char path[4096];

    if (prctl(PR_SET_NAME, "a b) (c") != 0) die("PR_SET_NAME");
    umask(027);
    if (setpriority(PRIO_PROCESS, 0, -5) != 0) die("setpriority");
    struct sched_param sp = {.sched_priority = 7};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) die("SCHED_FIFO");

    // signals: SIGUSR1, SIGUSR2, SIGTERM and SIGRTMAX (64) blocked; SIGUSR1 pending for
    // the thread, SIGUSR2 for the process.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, 64);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) die("sigprocmask");
    // the second thread inherits the mask: it must not take the process-directed signal
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0) die("pthread_create");
    if (syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1) != 0) die("tgkill");
    if (kill(getpid(), SIGUSR2) != 0) die("kill");

    // heap
    void* brk0 = sbrk(0);
    if (sbrk(65536) == (void*)-1) die("sbrk");
    memset(brk0, 2, 65536);

    // /dev/zero shared: shows as "/dev/zero (deleted)"
    int zfd = open("/dev/zero", O_RDWR);
    if (zfd < 0) die("/dev/zero");
    void* z = mmap((void*)0x20000000UL, 8192, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, zfd, 0);
    if (z == MAP_FAILED) die("mmap /dev/zero");
    close(zfd);

    // a file whose path has spaces and parentheses, mapped at offset 4096
    snprintf(path, sizeof path, "%s/dir with spaces/my file (1).bin", workdir);
    int ffd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (ffd < 0) die(path);
    if (ftruncate(ffd, 3 * 4096) != 0) die("ftruncate");
    if (mmap((void*)0x21000000UL, 8192, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, ffd,
             4096) == MAP_FAILED)
        die("mmap file");
    close(ffd);

    // a deleted file
    snprintf(path, sizeof path, "%s/gone.bin", workdir);
    int gfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (gfd < 0) die(path);
    if (ftruncate(gfd, 4096) != 0) die("ftruncate");
    if (mmap((void*)0x22000000UL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
             gfd, 0) == MAP_FAILED)
        die("mmap deleted");
    close(gfd);
    unlink(path);

    // madvise flags
    void* a = fixed_map(0x10000000UL, 4 * 4096);
    if (madvise(a, 4 * 4096, MADV_DONTDUMP) != 0) die("MADV_DONTDUMP");
    if (madvise(a, 4 * 4096, MADV_DONTFORK) != 0) die("MADV_DONTFORK");
    void* b = fixed_map(0x10200000UL, 2 << 20);
    if (madvise(b, 2 << 20, MADV_HUGEPAGE) != 0) die("MADV_HUGEPAGE");
    void* c = fixed_map(0x10600000UL, 4 * 4096);
    if (madvise(c, 4 * 4096, MADV_NOHUGEPAGE) != 0) die("MADV_NOHUGEPAGE");
    if (madvise(c, 4 * 4096, MADV_WIPEONFORK) != 0) die("MADV_WIPEONFORK");
    void* d = fixed_map(0x10800000UL, 2 * 4096);
    if (mlock(d, 2 * 4096) != 0) die("mlock");

    // fdinfo: a regular file O_RDWR|O_CLOEXEC at offset 12345, an O_WRONLY|O_APPEND file
    // after a write (pos = size), /dev/null O_RDWR.
    snprintf(path, sizeof path, "%s/regular.bin", workdir);
    int rfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (rfd < 0) die(path);
    if (ftruncate(rfd, 20000) != 0) die("ftruncate");
    if (lseek(rfd, 12345, SEEK_SET) != 12345) die("lseek");
    snprintf(path, sizeof path, "%s/append.log", workdir);
    int afd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (afd < 0) die(path);
    char junk[5000];
    memset(junk, 'x', sizeof junk);
    if (write(afd, junk, sizeof junk) != (ssize_t)sizeof junk) die("write append");
    if (lseek(afd, 7, SEEK_SET) != 7) die("lseek append");
    if (write(afd, junk, 100) != 100) die("write append");
    int nfd = open("/dev/null", O_RDWR);
    if (nfd < 0) die("/dev/null");

    struct stat st;
    char src[64];
    struct { int fd; const char* name; } fds[] = {
        {rfd, "fdinfo_regular.txt"}, {afd, "fdinfo_append.txt"}, {nfd, "fdinfo_devnull.txt"}};
    for (int i = 0; i < 3; ++i) {
        if (fstat(fds[i].fd, &st) != 0) die("fstat");
        struct statx stx;
        if (statx(fds[i].fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) != 0) die("statx");
        snprintf(src, sizeof src, "/proc/self/fdinfo/%d", fds[i].fd);
        copy_proc(src, fds[i].name);
        printf("%s: fd %d ino %lu pos %ld mnt_id %llu flags %#o\n", fds[i].name, fds[i].fd,
               (unsigned long)st.st_ino, (long)lseek(fds[i].fd, 0, SEEK_CUR),
               (unsigned long long)stx.stx_mnt_id, fcntl(fds[i].fd, F_GETFL));
    }

    copy_proc("/proc/self/maps", "maps.txt");
    copy_proc("/proc/self/smaps", "smaps.txt");

    // credentials last (the /proc files above need them); output files opened before
    int stat_out = create_out("stat.txt"), status_out = create_out("status.txt");
    gid_t groups[] = {4, 24, 27, 1000};
    if (setgroups(4, groups) != 0) die("setgroups");
    if (setresgid(1001, 1002, 1003) != 0) die("setresgid");
    setfsgid(1004);
    if (prctl(PR_SET_KEEPCAPS, 1) != 0) die("PR_SET_KEEPCAPS");
    if (setresuid(2001, 2002, 2003) != 0) die("setresuid");
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) die("capget");
    data[0].effective |= 1u << CAP_SETUID;
    if (syscall(SYS_capset, &hdr, data) != 0) die("capset");
    setfsuid(2004);
    if ((int)setfsuid(-1) != 2004) die("setfsuid");

    copy_proc_to("/proc/self/stat", stat_out);
    copy_proc_to("/proc/self/status", status_out);
    printf("pid %d ppid %d pgrp %d sid %d brk %p stack-var %p\n", getpid(), getppid(),
           getpgrp(), getsid(0), sbrk(0), (void*)&sp);
    return 0;
}
