/* files.c - open file descriptors and their state.
 *
 * Before READY it opens:
 *   rw      rw.dat O_RDWR, offset 1234; fd 77 is a dup of it (shared file description)
 *   ro      rw.dat O_RDONLY, offset 4321; a F_DUPFD_CLOEXEC copy of it at fd >= 300
 *   app     app.dat O_WRONLY|O_APPEND, offset 10
 *   sparse  sparse.dat O_RDWR, offset 1 MiB + 3 (beyond EOF)
 *   gone    gone.dat O_RDWR, 5000 bytes of pattern, mode 0640, then unlinked; offset 77
 *   null    /dev/null O_WRONLY|O_NONBLOCK
 *   zero    /dev/zero O_RDONLY|O_CLOEXEC
 *   dir     "." O_RDONLY|O_DIRECTORY|O_CLOEXEC
 * and records the fd table (/proc/self/fd), FD_CLOEXEC, F_GETFL, offsets and
 * inodes. After SIGTERM all of it must be the same, the dups must still share
 * their file description, the unlinked file must still be unlinked (nlink 0,
 * name gone) with its content, mode and offset, and reads and writes work.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static inline uint8_t pat(uint32_t seed, size_t off)
{
	uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + (uint64_t)off * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 29;
	return (uint8_t)x;
}

static void fill(uint8_t *b, size_t len, uint32_t seed, size_t base)
{
	for (size_t i = 0; i < len; i++)
		b[i] = pat(seed, base + i);
}

static void check_buf(const char *what, const uint8_t *b, size_t len, uint32_t seed, size_t base)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] != pat(seed, base + i))
			zt_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, base + i, b[i], pat(seed, base + i));
}

#define MAXFD 64
struct fdrec {
	const char *name;
	int fd;
	int fdflags;  /* F_GETFD */
	int flflags;  /* F_GETFL */
	off_t off;
	dev_t dev;
	ino_t ino;
	int same_inode; /* 0 for the unlinked file (it may be re-created) */
};

static struct fdrec recs[MAXFD];
static int nrecs;
static int fdlist_before[256], nfd_before;

static void record(const char *name, int fd, int same_inode)
{
	struct stat st;
	struct fdrec *r = &recs[nrecs++];

	if (fd < 0)
		zt_fail("%s: open failed: %s", name, strerror(errno));
	if (fstat(fd, &st) != 0)
		zt_fail("%s: fstat: %s", name, strerror(errno));
	r->name = name;
	r->fd = fd;
	r->fdflags = fcntl(fd, F_GETFD);
	r->flflags = fcntl(fd, F_GETFL);
	r->off = lseek(fd, 0, SEEK_CUR);
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->same_inode = same_inode;
}

static int list_fds(int *out, int cap)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		zt_fail("opendir(/proc/self/fd): %s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		if (n < cap)
			out[n++] = fd;
	}
	closedir(d);
	/* sort (readdir order is not guaranteed) */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static int xopen(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);
	if (fd < 0)
		zt_fail("open(%s): %s", path, strerror(errno));
	return fd;
}

static off_t cur(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

#define RW_LEN 10000
#define GONE_LEN 5000
#define SPARSE_OFF ((off_t)(1 << 20) + 3)

int main(void)
{
	uint8_t buf[RW_LEN];
	struct stat st, cwd_st;
	int rw, rw77, ro, ro300, app, sparse, gone, null, zero, dir;

	/* rw.dat: O_RDWR at 1234, dup'ed to fd 77 */
	rw = xopen("rw.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	fill(buf, RW_LEN, 1, 0);
	if (zt_write_all(rw, buf, RW_LEN) != 0)
		zt_fail("write rw.dat");
	if (lseek(rw, 1234, SEEK_SET) != 1234)
		zt_fail("lseek rw");
	rw77 = dup2(rw, 77);
	/* rw.dat: O_RDONLY at 4321, with a close-on-exec dup at >= 300 */
	ro = xopen("rw.dat", O_RDONLY, 0);
	if (lseek(ro, 4321, SEEK_SET) != 4321)
		zt_fail("lseek ro");
	ro300 = fcntl(ro, F_DUPFD_CLOEXEC, 300);
	/* app.dat: O_WRONLY|O_APPEND, offset moved back to 10 */
	app = xopen("app.dat", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600);
	fill(buf, 100, 2, 0);
	if (zt_write_all(app, buf, 100) != 0)
		zt_fail("write app.dat");
	if (lseek(app, 10, SEEK_SET) != 10)
		zt_fail("lseek app");
	/* sparse.dat: offset beyond EOF */
	sparse = xopen("sparse.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (zt_write_all(sparse, "0123456789", 10) != 0)
		zt_fail("write sparse.dat");
	if (lseek(sparse, SPARSE_OFF, SEEK_SET) != SPARSE_OFF)
		zt_fail("lseek sparse");
	/* gone.dat: unlinked while open */
	gone = xopen("gone.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	fill(buf, GONE_LEN, 3, 0);
	if (zt_write_all(gone, buf, GONE_LEN) != 0)
		zt_fail("write gone.dat");
	if (fchmod(gone, 0640) != 0 || unlink("gone.dat") != 0)
		zt_fail("fchmod/unlink gone.dat: %s", strerror(errno));
	if (lseek(gone, 77, SEEK_SET) != 77)
		zt_fail("lseek gone");
	/* devices and a directory */
	null = xopen("/dev/null", O_WRONLY | O_NONBLOCK, 0);
	zero = xopen("/dev/zero", O_RDONLY | O_CLOEXEC, 0);
	dir = xopen(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (stat(".", &cwd_st) != 0)
		zt_fail("stat(.)");

	record("rw", rw, 1);
	record("rw dup 77", rw77, 1);
	record("ro", ro, 1);
	record("ro dup 300", ro300, 1);
	record("app", app, 1);
	record("sparse", sparse, 1);
	record("unlinked", gone, 0);
	record("/dev/null", null, 1);
	record("/dev/zero", zero, 1);
	record("dir", dir, 1);

	/* sanity of the setup itself, so the checks below test what they claim */
	if (rw77 != 77 || ro300 < 300)
		zt_fail("dup setup: rw77=%d ro300=%d", rw77, ro300);
	if (recs[0].fdflags != 0 || recs[3].fdflags != FD_CLOEXEC || recs[8].fdflags != FD_CLOEXEC)
		zt_fail("FD_CLOEXEC setup is not as intended");
	nfd_before = list_fds(fdlist_before, 256);

	zt_ready();
	zt_wait_stop();

	/* the fd table */
	{
		int now[256];
		int n = list_fds(now, 256);
		if (n != nfd_before)
			zt_fail("%d fds open now, %d before the dump", n, nfd_before);
		for (int i = 0; i < n; i++)
			if (now[i] != fdlist_before[i])
				zt_fail("fd table differs: fd %d now, fd %d before", now[i], fdlist_before[i]);
	}
	/* per-fd state, compared with the record */
	for (int i = 0; i < nrecs; i++) {
		struct fdrec *r = &recs[i];
		int fdf = fcntl(r->fd, F_GETFD), flf = fcntl(r->fd, F_GETFL);
		if (fdf != r->fdflags)
			zt_fail("%s (fd %d): F_GETFD %#x, was %#x", r->name, r->fd, fdf, r->fdflags);
		if (flf != r->flflags)
			zt_fail("%s (fd %d): F_GETFL %#o, was %#o", r->name, r->fd, flf, r->flflags);
		if (cur(r->fd) != r->off)
			zt_fail("%s (fd %d): offset %lld, was %lld", r->name, r->fd, (long long)cur(r->fd),
				(long long)r->off);
		if (fstat(r->fd, &st) != 0)
			zt_fail("%s: fstat: %s", r->name, strerror(errno));
		if (r->same_inode && (st.st_dev != r->dev || st.st_ino != r->ino))
			zt_fail("%s (fd %d): now dev %lx ino %lu, was dev %lx ino %lu", r->name, r->fd,
				(unsigned long)st.st_dev, (unsigned long)st.st_ino, (unsigned long)r->dev,
				(unsigned long)r->ino);
	}
	/* ...and with what was intended */
	if (cur(rw) != 1234 || cur(ro) != 4321 || cur(app) != 10 || cur(sparse) != SPARSE_OFF || cur(gone) != 77)
		zt_fail("offsets: rw %lld ro %lld app %lld sparse %lld gone %lld", (long long)cur(rw),
			(long long)cur(ro), (long long)cur(app), (long long)cur(sparse), (long long)cur(gone));
	if ((fcntl(rw, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(ro, F_GETFL) & O_ACCMODE) != O_RDONLY ||
	    (fcntl(app, F_GETFL) & O_ACCMODE) != O_WRONLY || (fcntl(null, F_GETFL) & O_ACCMODE) != O_WRONLY)
		zt_fail("access modes differ from the ones opened");
	if (!(fcntl(app, F_GETFL) & O_APPEND) || (fcntl(rw, F_GETFL) & O_APPEND))
		zt_fail("O_APPEND flag wrong");
	if (!(fcntl(null, F_GETFL) & O_NONBLOCK) || (fcntl(zero, F_GETFL) & O_NONBLOCK))
		zt_fail("O_NONBLOCK flag wrong");
	if (fcntl(rw, F_GETFD) != 0 || fcntl(rw77, F_GETFD) != 0 || fcntl(ro, F_GETFD) != 0 ||
	    fcntl(ro300, F_GETFD) != FD_CLOEXEC || fcntl(zero, F_GETFD) != FD_CLOEXEC ||
	    fcntl(dir, F_GETFD) != FD_CLOEXEC)
		zt_fail("FD_CLOEXEC flags differ from the ones set");

	/* dups still share their file description (offset moves together) */
	if (lseek(rw77, 555, SEEK_SET) != 555 || cur(rw) != 555)
		zt_fail("fd 77 no longer shares the file description of fd %d (offset %lld)", rw,
			(long long)cur(rw));
	if (lseek(ro300, 42, SEEK_SET) != 42 || cur(ro) != 42)
		zt_fail("fd %d no longer shares the file description of fd %d", ro300, ro);
	if (lseek(ro, 4321, SEEK_SET) != 4321 || cur(ro300) != 4321)
		zt_fail("fd %d no longer shares the file description of fd %d (other way)", ro, ro300);

	/* rw.dat content, and rw/ro are the same file */
	if (pread(ro, buf, RW_LEN, 0) != RW_LEN)
		zt_fail("pread rw.dat");
	check_buf("rw.dat", buf, RW_LEN, 1, 0);
	if (read(ro, buf, 10) != 10)
		zt_fail("read ro at offset: %s", strerror(errno));
	check_buf("rw.dat read at restored offset", buf, 10, 1, 4321);
	if (pwrite(rw, "XYZ", 3, 20) != 3 || pread(ro, buf, 3, 20) != 3 || memcmp(buf, "XYZ", 3) != 0)
		zt_fail("write via rw not visible via ro");

	/* O_APPEND still appends, whatever the offset */
	if (write(app, "ABCDE", 5) != 5)
		zt_fail("write app: %s", strerror(errno));
	if (fstat(app, &st) != 0 || st.st_size != 105 || cur(app) != 105)
		zt_fail("append: size %lld offset %lld, expected 105", (long long)st.st_size, (long long)cur(app));
	{
		int fd = xopen("app.dat", O_RDONLY, 0);
		if (read(fd, buf, 105) != 105)
			zt_fail("read app.dat");
		check_buf("app.dat", buf, 100, 2, 0);
		if (memcmp(buf + 100, "ABCDE", 5) != 0)
			zt_fail("app.dat tail wrong");
		close(fd);
	}

	/* sparse: a write at the offset beyond EOF extends the file there */
	if (write(sparse, "!", 1) != 1 || fstat(sparse, &st) != 0 || st.st_size != SPARSE_OFF + 1)
		zt_fail("sparse write: size %lld, expected %lld", (long long)st.st_size, (long long)SPARSE_OFF + 1);

	/* the unlinked file */
	if (fstat(gone, &st) != 0)
		zt_fail("fstat unlinked: %s", strerror(errno));
	if (st.st_nlink != 0)
		zt_fail("unlinked file has nlink %lu", (unsigned long)st.st_nlink);
	if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0640)
		zt_fail("unlinked file mode %o, expected regular 0640", (unsigned)st.st_mode);
	if (st.st_size != GONE_LEN)
		zt_fail("unlinked file size %lld, expected %d", (long long)st.st_size, GONE_LEN);
	if (access("gone.dat", F_OK) == 0 || errno != ENOENT)
		zt_fail("gone.dat exists again in the directory");
	if (pread(gone, buf, GONE_LEN, 0) != GONE_LEN)
		zt_fail("pread unlinked: %s", strerror(errno));
	check_buf("unlinked file", buf, GONE_LEN, 3, 0);
	if (read(gone, buf, 10) != 10)
		zt_fail("read unlinked at offset");
	check_buf("unlinked file read at restored offset", buf, 10, 3, 77);
	if (write(gone, "hello", 5) != 5 || pread(gone, buf, 5, 87) != 5 || memcmp(buf, "hello", 5) != 0)
		zt_fail("write+read back on the unlinked file failed");

	/* devices */
	if (fstat(null, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		zt_fail("fd %d is not /dev/null", null);
	if (fstat(zero, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 5))
		zt_fail("fd %d is not /dev/zero", zero);
	memset(buf, 0xff, 100);
	if (read(zero, buf, 100) != 100)
		zt_fail("read /dev/zero");
	for (int i = 0; i < 100; i++)
		if (buf[i])
			zt_fail("/dev/zero gave a non-zero byte");
	if (write(null, buf, 100) != 100)
		zt_fail("write /dev/null");
	if (fstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_ino != cwd_st.st_ino || st.st_dev != cwd_st.st_dev)
		zt_fail("directory fd is not the work directory");
	if (fstatat(dir, "rw.dat", &st, 0) != 0 || st.st_ino != recs[0].ino)
		zt_fail("fstatat via the directory fd");
	zt_pass();
}
