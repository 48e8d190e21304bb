#include "core/thread_pool.h"

#include <algorithm>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EV_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define EV_CPU_RELAX() asm volatile("yield")
#else
#define EV_CPU_RELAX() ((void)0)
#endif

namespace edgevlm {

namespace {
thread_local bool t_inside_pool = false;
// About 50-100 µs of spinning before a thread goes to sleep.
constexpr int kSpinIters = 20000;
}  // namespace

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool(int n_threads) {
  EV_CHECK(n_threads >= 1 && n_threads <= 1024, "thread count must be in [1, 1024], got %d", n_threads);
  n_threads_ = n_threads;
  workers_.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= n_chunks_) break;
    int64_t b = c * chunk_;
    int64_t e = std::min(n_, b + chunk_);
    try {
      (*fn_)(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_main(int) {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      if (++spins < kSpinIters) {
        EV_CPU_RELAX();
        continue;
      }
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      break;
    }
    seen = generation_.load(std::memory_order_acquire);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
    }
    run_chunks();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for_grain(int64_t n, int64_t grain,
                                    const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || t_inside_pool || n <= grain) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  std::lock_guard<std::mutex> call_lk(call_mu_);
  fn_ = &fn;
  n_ = n;
  chunk_ = grain;
  n_chunks_ = (n + grain - 1) / grain;
  next_chunk_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  busy_workers_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();

  t_inside_pool = true;
  run_chunks();
  t_inside_pool = false;

  int spins = 0;
  while (busy_workers_.load(std::memory_order_acquire) != 0) {
    if (++spins < kSpinIters) {
      EV_CPU_RELAX();
      continue;
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return busy_workers_.load(std::memory_order_acquire) == 0; });
  }
  fn_ = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  // A few ranges per thread balance load on a shared machine without much scheduling cost.
  int64_t parts = int64_t(n_threads_) * 4;
  int64_t grain = std::max<int64_t>(1, (n + parts - 1) / parts);
  parallel_for_grain(n, grain, fn);
}

}  // namespace edgevlm
