/* zt.c - see zt.h */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t zt_stop;

static void zt_term_handler(int sig)
{
	(void)sig;
	zt_stop = 1;
}

void zt_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = zt_term_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* deliberately no SA_RESTART */
	if (sigaction(SIGTERM, &sa, NULL) != 0) {
		static const char msg[] = "FAIL: zt_init: sigaction(SIGTERM) failed\n";
		(void)!write(1, msg, sizeof(msg) - 1);
		_exit(1);
	}
}

__attribute__((constructor)) static void zt_ctor(void)
{
	zt_init();
}

int zt_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void zt_ready(void)
{
	if (zt_write_all(1, "READY\n", 6) != 0)
		_exit(1);
}

void zt_wait_stop(void)
{
	while (!zt_stop) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* EINTR on SIGTERM: loop re-checks zt_stop */
	}
}

void zt_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int64_t zt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void zt_vmsg(const char *prefix, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n = strlen(prefix);
	int r;

	memcpy(buf, prefix, n);
	r = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (r < 0)
		r = 0;
	n += (size_t)r < sizeof(buf) - n - 1 ? (size_t)r : sizeof(buf) - n - 2;
	/* one line only: replace embedded newlines */
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[n++] = '\n';
	(void)zt_write_all(1, buf, n);
}

void zt_pass(void)
{
	if (zt_write_all(1, "PASS\n", 5) != 0)
		_exit(1);
	exit(0);
}

void zt_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zt_vmsg("FAIL: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void zt_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zt_vmsg("# ", fmt, ap);
	va_end(ap);
}

long zt_read_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got < cap) {
		ssize_t n = read(fd, (char *)buf + got, cap - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (long)got;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse "start-end perms ..." lines without malloc (the heap may be under test). */
int zt_maps_lookup(const void *addr, uintptr_t *start, uintptr_t *end, char perms[5])
{
	static char buf[1 << 20];
	uintptr_t a = (uintptr_t)addr;
	long len = zt_read_file("/proc/self/maps", buf, sizeof(buf) - 1);
	char *p, *lim;

	if (len < 0)
		return -1;
	buf[len] = '\0';
	p = buf;
	lim = buf + len;
	while (p < lim) {
		uintptr_t s = 0, e = 0;
		char *eol = memchr(p, '\n', (size_t)(lim - p));
		int v;

		if (!eol)
			eol = lim;
		while ((v = hexval(*p)) >= 0) {
			s = s * 16 + (uintptr_t)v;
			p++;
		}
		if (*p == '-')
			p++;
		while ((v = hexval(*p)) >= 0) {
			e = e * 16 + (uintptr_t)v;
			p++;
		}
		if (*p == ' ')
			p++;
		if (a >= s && a < e && eol - p >= 4) {
			if (start)
				*start = s;
			if (end)
				*end = e;
			memcpy(perms, p, 4);
			perms[4] = '\0';
			return 0;
		}
		p = eol + 1;
	}
	return -1;
}
