// Wall-clock time spent in named phases of a command, summed over every time a phase is
// entered (e.g. once per process of a tree), for --print-stats: a benchmark can then say
// where the time goes without a profiler.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace ckpt {

class PhaseTimes {
  public:
    using Clock = std::chrono::steady_clock;

    // Adds the time from construction to destruction to a phase.
    class Scope {
      public:
        Scope(PhaseTimes& times, const char* phase) : times_(times), phase_(phase), start_(Clock::now()) {}
        ~Scope() { times_.add(phase_, std::chrono::duration<double, std::milli>(Clock::now() - start_).count()); }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

      private:
        PhaseTimes& times_;
        const char* phase_;
        Clock::time_point start_;
    };

    void add(const char* phase, double ms) {
        for (auto& [name, total] : phases_)
            if (name == phase) {
                total += ms;
                return;
            }
        phases_.emplace_back(phase, ms);
    }
    // In the order the phases were first entered.
    const std::vector<std::pair<std::string, double>>& phases() const { return phases_; }

  private:
    std::vector<std::pair<std::string, double>> phases_;
};

}  // namespace ckpt
