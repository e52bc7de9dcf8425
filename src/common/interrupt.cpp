#include "common/interrupt.h"

#include <signal.h>
#include <string.h>

#include <atomic>

namespace ckpt::interrupt {

namespace {

std::atomic<int> requested{0};
std::atomic<bool> ignoring{false};

void on_signal(int sig) {
    int none = 0;
    requested.compare_exchange_strong(none, sig);
}

}  // namespace

Interrupted::Interrupted(int sig)
    : Error(fmt::format("interrupted by {}", ::sigabbrev_np(sig) ? ::sigabbrev_np(sig) : "a signal")),
      sig_(sig) {}

void install() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
    // Timeouts (tracer::wait_tid_for) break a blocking wait with SIGALRM.
    struct sigaction alarm {};
    alarm.sa_handler = [](int) {};
    sigemptyset(&alarm.sa_mask);
    ::sigaction(SIGALRM, &alarm, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}

void check() {
    int sig = requested.load();
    if (sig != 0 && !ignoring.load()) throw Interrupted(sig);
}

void ignore_from_now() { ignoring = true; }

}  // namespace ckpt::interrupt
