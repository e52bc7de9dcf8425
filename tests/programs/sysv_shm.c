/* sysv_shm.c - System V shared memory segments keep their ids, keys, content and attaches.
 *
 * Before READY:
 *   A: key 0x5a5a0000 + (pid & 0xffff), 1 MiB + 100 bytes, mode 0640; a pattern in its first
 *      64 KiB, a page of zeros written at 512 KiB; attached read-write, then its second half
 *      mprotect()ed read-only (the attach is two VMAs);
 *   B: IPC_PRIVATE, 64 KiB of another pattern, attached SHM_RDONLY, then IPC_RMID (removed,
 *      still attached).
 * Their ids, keys, sizes, modes and attach counts are read just before READY.
 * After SIGTERM: both ids answer IPC_STAT with the same key, size, mode and attach count; B
 * is still marked removed (SHM_DEST); A's and B's content is there; A's second half is
 * read-only in /proc/self/maps; a second attach of A sees a write made through the first (the same segment); shmdt of the
 * first attach works (a genuine attach); A is removed at the end.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define A_SIZE ((1u << 20) + 100)
#define B_SIZE (64u << 10)

static uint8_t pat(unsigned seed, size_t i)
{
	return (uint8_t)(i * 7 + seed * 29 + (i >> 11));
}

static int a_id = -1;

static void fail_cleanup(void)
{
	if (a_id >= 0)
		shmctl(a_id, IPC_RMID, NULL);
}

static void stat_of(int id, struct shmid_ds *ds, const char *what)
{
	if (shmctl(id, IPC_STAT, ds) != 0) {
		fail_cleanup();
		zt_fail("IPC_STAT %s (id %d): %s", what, id, strerror(errno));
	}
}

int main(void)
{
	key_t a_key = (key_t)(0x5a5a0000 + (getpid() & 0xffff));
	struct shmid_ds a0, b0, a1, b1;
	uint8_t *a, *b, *a2;
	char perms[5];
	int b_id;

	a_id = shmget(a_key, A_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	b_id = shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600);
	if (a_id < 0 || b_id < 0) {
		fail_cleanup();
		zt_fail("shmget: %s", strerror(errno));
	}
	a = shmat(a_id, NULL, 0);
	b = shmat(b_id, NULL, 0);
	if (a == (void *)-1 || b == (void *)-1) {
		fail_cleanup();
		zt_fail("shmat: %s", strerror(errno));
	}
	for (size_t i = 0; i < 65536; i++)
		a[i] = pat(1, i);
	memset(a + (512 << 10), 0, 4096);
	for (size_t i = 0; i < B_SIZE; i++)
		b[i] = pat(2, i);
	shmdt(b);
	b = shmat(b_id, NULL, SHM_RDONLY);
	if (b == (void *)-1 || shmctl(b_id, IPC_RMID, NULL) != 0 || mprotect(a + (512 << 10), 512 << 10, PROT_READ) != 0) {
		fail_cleanup();
		zt_fail("setup: %s", strerror(errno));
	}
	stat_of(a_id, &a0, "A");
	stat_of(b_id, &b0, "B");

	zt_ready();
	zt_wait_stop();

	stat_of(a_id, &a1, "A");
	stat_of(b_id, &b1, "B");
	if (a1.shm_perm.__key != a_key || a1.shm_segsz != A_SIZE || (a1.shm_perm.mode & 0777) != 0640 ||
	    a1.shm_nattch != a0.shm_nattch) {
		fail_cleanup();
		zt_fail("A: key %#x size %zu mode %o attaches %lu, expected %#x %u 640 %lu", a1.shm_perm.__key,
			(size_t)a1.shm_segsz, a1.shm_perm.mode & 0777, (unsigned long)a1.shm_nattch, a_key, A_SIZE,
			(unsigned long)a0.shm_nattch);
	}
	if (b1.shm_segsz != B_SIZE || !(b1.shm_perm.mode & SHM_DEST) || b1.shm_nattch != b0.shm_nattch) {
		fail_cleanup();
		zt_fail("B: size %zu mode %o attaches %lu: expected %u, removed (SHM_DEST), %lu", (size_t)b1.shm_segsz,
			b1.shm_perm.mode, (unsigned long)b1.shm_nattch, B_SIZE, (unsigned long)b0.shm_nattch);
	}
	for (size_t i = 0; i < 65536; i++)
		if (a[i] != pat(1, i)) {
			fail_cleanup();
			zt_fail("A differs at %zu", i);
		}
	for (size_t i = 65536; i < A_SIZE; i += 512)
		if (a[i]) {
			fail_cleanup();
			zt_fail("A is not zero at %zu", i);
		}
	for (size_t i = 0; i < B_SIZE; i++)
		if (b[i] != pat(2, i)) {
			fail_cleanup();
			zt_fail("B differs at %zu", i);
		}
	if (zt_maps_lookup(a + (512 << 10), NULL, NULL, perms) != 0 || strcmp(perms, "r--s")) {
		fail_cleanup();
		zt_fail("A's second half is %s, expected r--s", perms);
	}
	a2 = shmat(a_id, NULL, 0);
	if (a2 == (void *)-1) {
		fail_cleanup();
		zt_fail("second shmat of A: %s", strerror(errno));
	}
	a[100] = 0x77;
	if (a2[100] != 0x77) {
		fail_cleanup();
		zt_fail("a write through A's attach does not show in a new attach: not the segment");
	}
	if (shmdt(a) != 0 || shmdt(a2) != 0 || shmdt(b) != 0) {
		fail_cleanup();
		zt_fail("shmdt: %s", strerror(errno));
	}
	if (shmctl(a_id, IPC_RMID, NULL) != 0)
		zt_fail("IPC_RMID A: %s", strerror(errno));
	zt_pass();
}
