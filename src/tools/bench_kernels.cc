#include "tools/bench_kernels.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "ops/cpu_features.h"

namespace edgevlm {

namespace {

// Runs body(t) on `threads` threads started together; returns the wall time of the slowest.
template <typename F>
double run_threads(int threads, F body) {
  std::vector<std::thread> ts;
  std::vector<double> sink(size_t(threads), 0.0);
  const double t0 = now_ms();
  for (int t = 1; t < threads; ++t) ts.emplace_back([&, t] { sink[size_t(t)] = body(t); });
  sink[0] = body(0);
  for (auto& th : ts) th.join();
  const double ms = now_ms() - t0;
  volatile double keep = 0;
  for (double s : sink) keep = keep + s;
  return ms;
}

double read_sum_scalar(const void* p, size_t bytes) {
  const uint64_t* v = static_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4) a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];
  return double(a0 + a1 + a2 + a3);
}

}  // namespace

double bench_read_bandwidth(size_t bytes, int threads, int reps) {
  EV_CHECK(threads >= 1 && reps >= 1 && bytes >= (size_t(1) << 20), "bandwidth benchmark: bad parameters");
  bytes = bytes / (size_t(threads) * 4096) * (size_t(threads) * 4096);
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
  EV_CHECK(buf != nullptr, "bandwidth benchmark: cannot allocate %zu MB", bytes >> 20);
  // Touched by the threads that will read it (first touch places the pages).
  const size_t slice = bytes / size_t(threads);
  run_threads(threads, [&](int t) {
    std::memset(buf.get() + size_t(t) * slice, t + 1, slice);
    return 0.0;
  });
  const bool avx2 = cpu_has_avx2();
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double ms = run_threads(threads, [&](int t) {
      const uint8_t* p = buf.get() + size_t(t) * slice;
      return avx2 ? bench_detail::read_sum_avx2(p, slice) : read_sum_scalar(p, slice);
    });
    best = std::max(best, double(bytes) / (ms * 1e6));
  }
  return best;
}

double bench_peak_fma(int threads, int reps) {
  const long iters = 20'000'000;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double ms;
    if (cpu_has_avx2()) {
      ms = run_threads(threads, [&](int) { return bench_detail::fma_loop_avx2(iters); });
      best = std::max(best, 160.0 * double(iters) * threads / (ms * 1e6));
    } else {
      ms = run_threads(threads, [&](int) {
        float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        for (long i = 0; i < iters; ++i)
          for (float& x : a) x = x * 0.999999f + 1e-7f;
        return double(a[0] + a[7]);
      });
      best = std::max(best, 16.0 * double(iters) * threads / (ms * 1e6));
    }
  }
  return best;
}

const char* int8_peak_kind(bool vnni) {
  if (!cpu_has_avx2()) return "scalar";
  return vnni ? "avx-vnni" : "avx2 maddubs";
}

double bench_peak_int8(int threads, int reps, bool vnni) {
  const long iters = 20'000'000;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    if (cpu_has_avx2() && vnni) {
      const double ms = run_threads(threads, [&](int) { return bench_detail::int8_loop_vnni(iters); });
      best = std::max(best, 320.0 * double(iters) * threads / (ms * 1e6));
    } else if (cpu_has_avx2()) {
      const double ms = run_threads(threads, [&](int) { return bench_detail::int8_loop_avx2(iters); });
      best = std::max(best, 256.0 * double(iters) * threads / (ms * 1e6));
    } else {
      const double ms = run_threads(threads, [&](int) {
        int32_t a[8] = {0};
        volatile int8_t x = 3, y = -2;
        for (long i = 0; i < iters; ++i)
          for (int32_t& v : a) v += int32_t(x) * int32_t(y);
        return double(a[0]);
      });
      best = std::max(best, 8.0 * double(iters) * threads / (ms * 1e6));
    }
  }
  return best;
}

}  // namespace edgevlm
