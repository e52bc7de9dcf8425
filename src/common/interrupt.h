// Being asked to stop (SIGINT, SIGTERM, SIGHUP, SIGQUIT) in the middle of a dump. The
// handler only records the request; the dump notices it at its next step (fault::point)
// and unwinds, and unwinding is the rollback: the target is left exactly as it was.
#pragma once

#include "common/error.h"

namespace ckpt::interrupt {

class Interrupted : public Error {
  public:
    explicit Interrupted(int sig);
    int signal() const { return sig_; }

  private:
    int sig_;
};

// Installs the handlers (no SA_RESTART: blocking calls return early), a no-op SIGALRM
// handler for timeouts, and ignores SIGPIPE.
void install();
// Throws Interrupted if a stop was requested and the dump can still be rolled back.
void check();
// From now on requests are ignored: the dump is complete and only finishing remains.
void ignore_from_now();

}  // namespace ckpt::interrupt
