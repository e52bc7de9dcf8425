// timerfd: clock, time left, interval, absolute mode and expirations not yet read.
//
// Time left is kept, not the moment of expiry: the time an image waits before restore does
// not count (as CRIU does, and as ckpt does for interval timers), except for an absolute
// timer of a wall clock (CLOCK_REALTIME, CLOCK_REALTIME_ALARM with TFD_TIMER_ABSTIME),
// which fires at the wall time it was set for, or at once if that has passed.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "common/error.h"
#include "files/event_fds.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

namespace {

// linux/timerfd.h, which clashes with glibc's sys/timerfd.h
constexpr unsigned long kSetTicks = _IOW('T', 0, uint64_t);

// "(SEC, NSEC)" after KEY in fdinfo.
void read_pair(std::string_view fdinfo, const char* key, int64_t& sec, int64_t& nsec) {
    for (auto line : proc::fdinfo_lines(fdinfo, key)) {
        std::string l(line);
        unsigned long long s = 0, ns = 0;
        if (std::sscanf(l.c_str() + std::string_view(key).size(), ": (%llu, %llu)", &s, &ns) == 2) {
            sec = static_cast<int64_t>(s);
            nsec = static_cast<int64_t>(ns);
            return;
        }
    }
    fail("malformed timerfd fdinfo: no {} line", key);
}

int64_t now_ns(clockid_t clock) {
    timespec ts;
    if (::clock_gettime(clock, &ts) != 0) fail_errno("cannot read clock {}", clock);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

timespec to_timespec(int64_t ns) { return {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)}; }

}  // namespace

image::TimerFd dump_timerfd(std::string_view fdinfo, uint32_t file_id) {
    image::TimerFd r;
    r.file_id = file_id;
    r.clockid = static_cast<int32_t>(proc::fdinfo_number(fdinfo, "clockid", 10, "timerfd clockid"));
    r.ticks = proc::fdinfo_number(fdinfo, "ticks", 10, "timerfd ticks");
    r.settime_flags = static_cast<uint32_t>(proc::fdinfo_number(fdinfo, "settime flags", 8, "timerfd settime flags"));
    read_pair(fdinfo, "it_value", r.value_sec, r.value_nsec);
    read_pair(fdinfo, "it_interval", r.interval_sec, r.interval_nsec);
    r.read_realtime_ns = now_ns(CLOCK_REALTIME);
    return r;
}

int open_timerfd(const image::TimerFd& rec, uint32_t open_flags) {
    int fd = ::timerfd_create(rec.clockid, TFD_CLOEXEC | ((open_flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
    if (fd < 0) fail_errno("cannot create a timerfd on clock {}", rec.clockid);
    try {
        int64_t value = rec.value_sec * 1000000000 + rec.value_nsec;
        int64_t interval = rec.interval_sec * 1000000000 + rec.interval_nsec;
        // A periodic timer that expired and was not read since is not running: the kernel
        // re-arms it at the read. Its next expiry is taken to be one interval away (or, if
        // the expiry had not been counted yet, now).
        if (value == 0 && interval != 0) value = rec.ticks ? interval : 1;
        itimerspec its{to_timespec(interval), to_timespec(value)};
        if ((rec.settime_flags & TFD_TIMER_ABSTIME) && value != 0) {
            bool wall = rec.clockid == CLOCK_REALTIME || rec.clockid == CLOCK_REALTIME_ALARM;
            its.it_value = to_timespec((wall ? rec.read_realtime_ns : now_ns(rec.clockid)) + value);
        }
        if (::timerfd_settime(fd, static_cast<int>(rec.settime_flags), &its, nullptr) != 0)
            fail_errno("cannot arm a timerfd (clock {}, flags {:#o})", rec.clockid, rec.settime_flags);
        // After arming, which clears the count. A wall-clock timer already due fires at once
        // and may have counted one expiry before this overwrites it with the saved count.
        if (rec.ticks) {
            uint64_t ticks = rec.ticks;
            if (::ioctl(fd, kSetTicks, &ticks) != 0)
                fail_errno("cannot give a timerfd its {} unread expirations (TFD_IOC_SET_TICKS)", rec.ticks);
        }
    } catch (...) {
        ::close(fd);
        throw;
    }
    return fd;
}

}  // namespace ckpt::files
