// Monotonic wall clock for timings and benchmarks.
#pragma once

#include <chrono>

namespace edgevlm {

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Starts on construction; elapsed_ms() reads without stopping.
class Timer {
 public:
  Timer() : t0_(now_ms()) {}
  void reset() { t0_ = now_ms(); }
  double elapsed_ms() const { return now_ms() - t0_; }

 private:
  double t0_;
};

}  // namespace edgevlm
