/* file_locks.c - POSIX record locks, OFD locks and flock() locks are held again.
 *
 * Before READY (files in the work directory):
 *   a.dat: POSIX write lock on bytes 0..99 and read lock from 200 to EOF (fd A); the same
 *          file opened a second time (fd A2), so the locks show on two descriptors;
 *   b.dat: OFD read lock on bytes 10..20 (fd B);
 *   c.dat: flock LOCK_EX (fd C), and fd C2 a dup of C (same description);
 *   d.dat: flock LOCK_SH (fd D);
 *   e.dat: flock LOCK_EX, then mapped and its fd closed (the mapping holds the lock, as the
 *          JVM's hsperfdata file does).
 * After SIGTERM a fresh child (another process, other descriptions) must find: a.dat 0..99
 * write-locked by this process's pid, 200..300 read-locked (a write lock conflicts, a read
 * lock does not), 100..199 free; b.dat 10..20 OFD read-locked (a write conflicts), 30..40
 * free; c.dat exclusively flocked (LOCK_SH fails); d.dat shared-flocked (LOCK_SH works,
 * LOCK_EX fails); e.dat exclusively flocked. Then this process unlocks c.dat through C2 and the child can flock it.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int open_file(const char *name)
{
	int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 4096) != 0)
		zt_fail("open %s: %s", name, strerror(errno));
	return fd;
}

static void lock(int fd, int cmd, short type, off_t start, off_t len, const char *what)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl) != 0)
		zt_fail("lock %s: %s", what, strerror(errno));
}

/* F_GETLK/F_OFD_GETLK from a fresh description: the type of a conflicting lock, F_UNLCK if none. */
static short probe(const char *name, int cmd, short type, off_t start, off_t len, pid_t *holder)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	int fd = open(name, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, cmd, &fl) != 0)
		_exit(90);
	close(fd);
	if (holder)
		*holder = fl.l_pid;
	return fl.l_type;
}

static int try_flock(const char *name, int op)
{
	int fd = open(name, O_RDWR | O_CLOEXEC), r;
	if (fd < 0)
		_exit(91);
	r = flock(fd, op | LOCK_NB);
	close(fd);
	return r == 0 ? 0 : errno;
}

/* Exit 0 if every lock is seen as expected, else the number of the first failed check. */
static void checker(pid_t owner, int phase)
{
	pid_t holder = 0;
	if (phase == 1) {
		if (try_flock("c.dat", LOCK_EX) != 0)
			_exit(20);
		_exit(0);
	}
	if (probe("a.dat", F_GETLK, F_RDLCK, 0, 100, &holder) != F_WRLCK || holder != owner)
		_exit(10);
	if (probe("a.dat", F_GETLK, F_WRLCK, 200, 101, &holder) != F_RDLCK || holder != owner)
		_exit(11);
	if (probe("a.dat", F_GETLK, F_RDLCK, 200, 101, NULL) != F_UNLCK)
		_exit(12);
	if (probe("a.dat", F_GETLK, F_WRLCK, 100, 100, NULL) != F_UNLCK)
		_exit(13);
	if (probe("b.dat", F_OFD_GETLK, F_WRLCK, 10, 11, NULL) != F_RDLCK)
		_exit(14);
	if (probe("b.dat", F_OFD_GETLK, F_WRLCK, 30, 11, NULL) != F_UNLCK)
		_exit(15);
	if (try_flock("c.dat", LOCK_SH) != EWOULDBLOCK)
		_exit(16);
	if (try_flock("d.dat", LOCK_SH) != 0)
		_exit(17);
	if (try_flock("d.dat", LOCK_EX) != EWOULDBLOCK)
		_exit(18);
	if (try_flock("e.dat", LOCK_SH) != EWOULDBLOCK)
		_exit(19);
	_exit(0);
}

static int run_checker(int phase)
{
	pid_t owner = getpid(), kid = fork();
	int st;
	if (kid < 0)
		zt_fail("fork: %s", strerror(errno));
	if (kid == 0)
		checker(owner, phase);
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st))
		zt_fail("the checking child did not exit normally");
	return WEXITSTATUS(st);
}

int main(void)
{
	int a = open_file("a.dat"), a2 = open_file("a.dat"), b = open_file("b.dat");
	int c = open_file("c.dat"), d = open_file("d.dat"), c2, r;
	static const char *what[] = {
		[10] = "a.dat 0..99 is not write-locked by this process",
		[11] = "a.dat 200.. is not read-locked by this process",
		[12] = "a.dat 200.. conflicts with a read lock",
		[13] = "a.dat 100..199 is locked",
		[14] = "b.dat 10..20 has no OFD read lock",
		[15] = "b.dat 30..40 is locked",
		[16] = "c.dat is not flocked exclusively",
		[17] = "d.dat's shared flock conflicts with another shared one",
		[18] = "d.dat has no shared flock",
		[19] = "e.dat, flocked through its mapping only, is not locked",
		[20] = "c.dat is still flocked after unlocking it through the dup",
	};

	lock(a, F_SETLK, F_WRLCK, 0, 100, "a.dat 0..99");
	lock(a, F_SETLK, F_RDLCK, 200, 0, "a.dat 200..");
	lock(b, F_OFD_SETLK, F_RDLCK, 10, 11, "b.dat 10..20");
	if (flock(c, LOCK_EX) != 0 || flock(d, LOCK_SH) != 0)
		zt_fail("flock: %s", strerror(errno));
	{
		int e = open_file("e.dat");
		void *m;
		if (flock(e, LOCK_EX) != 0)
			zt_fail("flock e.dat: %s", strerror(errno));
		m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, e, 0);
		if (m == MAP_FAILED)
			zt_fail("mmap e.dat: %s", strerror(errno));
		close(e);
	}
	c2 = dup(c);
	if (c2 < 0)
		zt_fail("dup: %s", strerror(errno));
	(void)a2;
	if ((r = run_checker(0)) != 0)
		zt_fail("setup: %s", r < 21 && what[r] ? what[r] : "checker failed");

	zt_ready();
	zt_wait_stop();

	if ((r = run_checker(0)) != 0)
		zt_fail("%s", r < 21 && what[r] ? what[r] : "checker failed");
	if (flock(c2, LOCK_UN) != 0)
		zt_fail("flock(LOCK_UN): %s", strerror(errno));
	if ((r = run_checker(1)) != 0)
		zt_fail("%s", r < 21 && what[r] ? what[r] : "checker failed");
	zt_pass();
}
