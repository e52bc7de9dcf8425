/* zt.h - tiny helper library for the ckpt zdtm-style end-to-end test programs.
 *
 * Protocol (see tests/README.md):
 *   - set up state, then zt_ready() writes "READY\n" to fd 1 with write(2);
 *   - keep working until SIGTERM sets zt_stop (zt_wait_stop() sleeps until then);
 *   - check the state and finish with zt_pass() ("PASS", exit 0) or
 *     zt_fail(...) ("FAIL: ...", exit 1).
 *
 * The SIGTERM handler is installed automatically (constructor in zt.c) with
 * sigaction() and WITHOUT SA_RESTART, so blocking calls return EINTR on SIGTERM.
 * zt_init() may be called again to reinstall it (it is idempotent).
 */
#ifndef ZT_H
#define ZT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

extern volatile sig_atomic_t zt_stop;

/* Make the compiler assume *p escaped and may have been changed by anyone:
 * keeps checks on memory the compiler could otherwise prove unchanged. */
#define ZT_ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

/* Install the SIGTERM handler (done automatically before main()). */
void zt_init(void);

/* write(2) all of buf to fd, retrying on EINTR and short writes. 0 on success, -1 on error. */
int zt_write_all(int fd, const void *buf, size_t len);

/* Write "READY\n" to fd 1. Fails the test if that is impossible. */
void zt_ready(void);

/* Sleep in small nanosleep() steps until zt_stop is set. */
void zt_wait_stop(void);

/* Sleep for ms milliseconds (continues across EINTR). */
void zt_sleep_ms(long ms);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t zt_now_ns(void);

/* Write "PASS\n" to fd 1 and exit(0). */
__attribute__((noreturn)) void zt_pass(void);

/* Write "FAIL: <message>\n" to fd 1 and exit(1). */
__attribute__((noreturn, format(printf, 1, 2))) void zt_fail(const char *fmt, ...);

/* Write "# <message>\n" to fd 1 (informational; ignored by the harness). */
__attribute__((format(printf, 1, 2))) void zt_info(const char *fmt, ...);

/* Find the /proc/self/maps entry that contains addr. On success fills
 * start/end (may be NULL) and perms (5 bytes: "rw-p" + NUL) and returns 0;
 * returns -1 if no mapping contains addr. Does not allocate memory. */
int zt_maps_lookup(const void *addr, uintptr_t *start, uintptr_t *end, char perms[5]);

/* Read a whole (small) file into buf (at most cap bytes). Returns the number of bytes read or -1. */
long zt_read_file(const char *path, void *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ZT_H */
