/* events_inotify.c - inotify watches keep their numbers and masks and report new events.
 *
 * Before READY (in the work directory): a non-blocking inotify instance with watch 1 on the
 * directory watched/ (IN_CREATE | IN_DELETE), watch 2 on log.txt (IN_MODIFY), watch 3 on
 * gone/ (removed again: its number stays used), watch 4 on once.txt (IN_CLOSE_WRITE |
 * IN_ONESHOT). Nothing is left to read.
 * After SIGTERM: nothing is queued (no IN_IGNORED or other stray events); creating
 * watched/new reports IN_CREATE "new" on watch 1; appending to log.txt reports IN_MODIFY on
 * watch 2; writing once.txt reports IN_CLOSE_WRITE on watch 4 once; adding watched/ again
 * returns watch 1; a new watch gets number 5.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static int ino;

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1)
		zt_fail("write %s: %s", path, strerror(errno));
	close(fd);
}

static int watch(const char *path, uint32_t mask, int want)
{
	int wd = inotify_add_watch(ino, path, mask);
	if (wd != want)
		zt_fail("inotify_add_watch(%s) gave %d, expected %d (%s)", path, wd, want, strerror(errno));
	return wd;
}

/* Events read but not yet looked at (one read may return several). */
static char pending[8192] __attribute__((aligned(8)));
static size_t pending_len, pending_off;

/* Waits up to 2 s for the next event; fails unless it is (wd, mask bit, name). */
static void expect_event(int wd, uint32_t bit, const char *name)
{
	int64_t end = zt_now_ns() + 2000000000LL;
	while (pending_off >= pending_len) {
		ssize_t n = read(ino, pending, sizeof(pending));
		if (n > 0) {
			pending_len = (size_t)n;
			pending_off = 0;
			break;
		}
		if (n < 0 && errno != EAGAIN)
			zt_fail("read inotify: %s", strerror(errno));
		if (zt_now_ns() > end)
			zt_fail("no event for watch %d within 2 s", wd);
		zt_sleep_ms(5);
	}
	struct inotify_event *e = (struct inotify_event *)(pending + pending_off);
	pending_off += sizeof(*e) + e->len;
	if (e->wd != wd || !(e->mask & bit) || (name && strcmp(e->name, name)))
		zt_fail("event wd %d mask %#x name '%s', expected wd %d mask %#x name '%s'", e->wd, e->mask,
			e->len ? e->name : "", wd, bit, name ? name : "");
}

static void expect_nothing(const char *when)
{
	char buf[4096];
	if (pending_off < pending_len) {
		struct inotify_event *e = (struct inotify_event *)(pending + pending_off);
		zt_fail("%s: an event is queued: wd %d mask %#x", when, e->wd, e->mask);
	}
	ssize_t n = read(ino, buf, sizeof(buf));
	if (n >= 0) {
		struct inotify_event *e = (struct inotify_event *)buf;
		zt_fail("%s: an event is queued: wd %d mask %#x", when, e->wd, e->mask);
	}
	if (errno != EAGAIN)
		zt_fail("read inotify: %s", strerror(errno));
}

int main(void)
{
	char c;
	if (mkdir("watched", 0755) != 0 || mkdir("gone", 0755) != 0)
		zt_fail("mkdir: %s", strerror(errno));
	touch("log.txt");
	touch("once.txt");
	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino < 0)
		zt_fail("inotify_init1: %s", strerror(errno));
	watch("watched", IN_CREATE | IN_DELETE, 1);
	watch("log.txt", IN_MODIFY, 2);
	watch("gone", IN_CREATE, 3);
	watch("once.txt", IN_CLOSE_WRITE | IN_ONESHOT, 4);
	if (inotify_rm_watch(ino, 3) != 0)
		zt_fail("inotify_rm_watch: %s", strerror(errno));
	expect_event(3, IN_IGNORED, NULL);
	expect_nothing("setup");

	zt_ready();
	zt_wait_stop();

	expect_nothing("after the dump");
	touch("watched/new");
	expect_event(1, IN_CREATE, "new");
	touch("log.txt");
	expect_event(2, IN_MODIFY, NULL);
	touch("once.txt");
	expect_event(4, IN_CLOSE_WRITE, NULL);
	expect_event(4, IN_IGNORED, NULL);  /* a one-shot watch goes once it fired */
	touch("once.txt");
	expect_nothing("after the one-shot watch fired");
	watch("watched", IN_CREATE | IN_MASK_ADD, 1);
	watch(".", IN_CREATE, 5);
	(void)c;
	zt_pass();
}
