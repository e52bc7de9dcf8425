/* unlinked_sparse.c - a sparse file deleted while open keeps its holes and attributes.
 *
 * Before READY it creates sparse.dat: 1 GiB long, with data only in a few places
 * (4 KiB at 0, 8 KiB at 256 MiB, 100 bytes at 512 MiB + 10, 3 bytes at the very end),
 * gives it owner 4321:8765, mode 0604, atime and mtime set to fixed instants (ns
 * precision), opens it O_RDWR at offset 300 MiB and unlinks it. After SIGTERM the file
 * must still be unlinked and have the same size, data, owner, mode, atime and mtime,
 * and its holes must still be holes: SEEK_DATA/SEEK_HOLE find the data ranges (at
 * file-system block granularity) and st_blocks stays small. (The harness also checks
 * that the image is small.) The atime is checked before anything reads the file.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE (1ll << 30)
#define OFFSET (300ll << 20)
#define UID 4321
#define GID 8765
#define MODE 0604
static const struct timespec times[2] = {{1000000000, 123456789}, {1234567890, 987654321}};

struct piece {
	off_t off;
	size_t len;
};
static const struct piece pieces[] = {
	{0, 4096}, {256ll << 20, 8192}, {(512ll << 20) + 10, 100}, {SIZE - 3, 3},
};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

static uint8_t pat(size_t k, off_t off)
{
	return (uint8_t)(0x5a ^ (k * 37) ^ (uint64_t)off ^ ((uint64_t)off >> 8));
}

static void check_piece(int fd, size_t k)
{
	uint8_t buf[8192];
	const struct piece *p = &pieces[k];

	if (pread(fd, buf, p->len, p->off) != (ssize_t)p->len)
		zt_fail("pread %zu bytes at %lld: %s", p->len, (long long)p->off, strerror(errno));
	for (size_t i = 0; i < p->len; i++)
		if (buf[i] != pat(k, p->off + (off_t)i))
			zt_fail("byte at %lld is 0x%02x, expected 0x%02x", (long long)p->off + (long long)i, buf[i],
				pat(k, p->off + (off_t)i));
}

/* A byte outside every piece (in a hole) must read as zero. */
static void check_zero_at(int fd, off_t off)
{
	uint8_t b = 0xff;
	if (pread(fd, &b, 1, off) != 1 || b != 0)
		zt_fail("hole byte at %lld reads 0x%02x", (long long)off, b);
}

static int in_piece(off_t off, off_t blk)
{
	for (size_t k = 0; k < NPIECES; k++) {
		off_t s = pieces[k].off / blk * blk, e = (pieces[k].off + (off_t)pieces[k].len + blk - 1) / blk * blk;
		if (off >= s && off < e)
			return 1;
	}
	return 0;
}

int main(void)
{
	uint8_t buf[8192];
	struct stat st;
	int fd = open("sparse.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		zt_fail("open sparse.dat: %s", strerror(errno));
	if (ftruncate(fd, SIZE) != 0)
		zt_fail("ftruncate: %s", strerror(errno));
	for (size_t k = 0; k < NPIECES; k++) {
		for (size_t i = 0; i < pieces[k].len; i++)
			buf[i] = pat(k, pieces[k].off + (off_t)i);
		if (pwrite(fd, buf, pieces[k].len, pieces[k].off) != (ssize_t)pieces[k].len)
			zt_fail("pwrite: %s", strerror(errno));
	}
	if (fchown(fd, UID, GID) != 0 || fchmod(fd, MODE) != 0 || futimens(fd, times) != 0)
		zt_fail("fchown/fchmod/futimens: %s", strerror(errno));
	if (lseek(fd, OFFSET, SEEK_SET) != OFFSET)
		zt_fail("lseek");
	if (unlink("sparse.dat") != 0)
		zt_fail("unlink: %s", strerror(errno));
	if (fstat(fd, &st) != 0)
		zt_fail("fstat");
	const blkcnt_t blocks_before = st.st_blocks;
	if (blocks_before > 2048)
		zt_fail("setup: the file system stored %lld blocks: no sparse files here?", (long long)blocks_before);

	zt_ready();
	zt_wait_stop();

	if (fstat(fd, &st) != 0)
		zt_fail("fstat after: %s", strerror(errno));
	if (st.st_atim.tv_sec != times[0].tv_sec || st.st_atim.tv_nsec != times[0].tv_nsec)
		zt_fail("atime %lld.%09ld, expected %lld.%09ld", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
			(long long)times[0].tv_sec, times[0].tv_nsec);
	if (st.st_mtim.tv_sec != times[1].tv_sec || st.st_mtim.tv_nsec != times[1].tv_nsec)
		zt_fail("mtime %lld.%09ld, expected %lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			(long long)times[1].tv_sec, times[1].tv_nsec);
	if (st.st_nlink != 0 || access("sparse.dat", F_OK) == 0)
		zt_fail("the file is linked again (nlink %lu)", (unsigned long)st.st_nlink);
	if (st.st_size != SIZE)
		zt_fail("size %lld, expected %lld", (long long)st.st_size, SIZE);
	if (st.st_uid != UID || st.st_gid != GID)
		zt_fail("owner %u:%u, expected %u:%u", st.st_uid, st.st_gid, UID, GID);
	if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != MODE)
		zt_fail("mode %o, expected regular %o", (unsigned)st.st_mode, MODE);
	if (st.st_blocks > blocks_before + 64)
		zt_fail("%lld blocks allocated, %lld before: the holes were filled", (long long)st.st_blocks,
			(long long)blocks_before);
	if (lseek(fd, 0, SEEK_CUR) != OFFSET)
		zt_fail("offset %lld, expected %lld", (long long)lseek(fd, 0, SEEK_CUR), OFFSET);

	/* holes: every data range SEEK_DATA reports is (block-rounded) inside a piece */
	const off_t blk = st.st_blksize > 0 ? st.st_blksize : 4096;
	int ranges = 0;
	for (off_t off = 0; off < SIZE;) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break;
			zt_fail("SEEK_DATA: %s", strerror(errno));
		}
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			zt_fail("SEEK_HOLE: %s", strerror(errno));
		if (!in_piece(d, blk) || !in_piece(h - 1, blk))
			zt_fail("data at %lld..%lld, outside the pieces written: a hole was filled", (long long)d,
				(long long)h);
		ranges++;
		off = h;
	}
	if (ranges < 3)
		zt_fail("only %d data ranges found", ranges);
	for (size_t k = 0; k < NPIECES; k++)
		check_piece(fd, k);
	check_zero_at(fd, 4096);
	check_zero_at(fd, 100ll << 20);
	check_zero_at(fd, (512ll << 20) + 9);
	check_zero_at(fd, SIZE - 4);
	/* still usable: write in a hole, read back */
	if (pwrite(fd, "xyz", 3, 700ll << 20) != 3 || pread(fd, buf, 3, 700ll << 20) != 3 || memcmp(buf, "xyz", 3))
		zt_fail("write+read back in a hole failed");
	zt_pass();
}
