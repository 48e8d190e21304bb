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

// Protocol. A job is published as a ticket (generation << 32 | chunk count << 16 | next chunk
// index) in one atomic word; every thread, the caller included, claims a chunk by compare-and-swap
// on that word, which succeeds only while the word still names this job and a chunk below its
// count. The job's other fields are read only after a successful claim: the caller writes the
// next job's fields only after every claimed chunk of this one has finished, so they are this
// job's. (They used to be read before the claim, the count among them: a worker could read one
// job's ticket and the next job's count and function, claim a chunk past the first job's end, and
// run a range of the second job twice, releasing its caller early or never: crashes and a hang
// under load.) The caller waits only for chunks that were claimed, never for a worker that has
// not woken up yet, so on a machine shared with other processes a descheduled worker costs nothing.

namespace {
thread_local bool t_inside_pool = false;
constexpr int kSpinIters = 4000;  // tens of µs of polling before a worker sleeps
constexpr uint64_t kChunkMask = 0xFFFF;  // chunk count and index: 16 bits each in the ticket
constexpr int64_t kMaxChunks = int64_t(kChunkMask);
}  // namespace

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool(int n_threads) {
  EV_CHECK(n_threads >= 1 && n_threads <= 1024, "thread count must be in [1, 1024], got %d", n_threads);
  n_threads_ = n_threads;
  workers_.reserve(size_t(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims and runs chunks of job `gen` until none are left. Returns when the job is exhausted
// or superseded.
void ThreadPool::run_chunks(uint32_t gen) {
  for (;;) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    if (uint32_t(t >> 32) != gen) return;
    const int64_t idx = int64_t(t & kChunkMask), n_chunks = int64_t((t >> 16) & kChunkMask);
    if (idx >= n_chunks) return;
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
    // Claimed chunk idx of job gen: the caller waits for it, so the fields stay this job's.
    const int64_t chunk = chunk_.load(std::memory_order_relaxed), n = n_.load(std::memory_order_relaxed);
    const std::function<void(int64_t, int64_t)>* fn = fn_.load(std::memory_order_relaxed);
    const bool bounded = n_bounds_.load(std::memory_order_relaxed) > 0;
    const int64_t b = bounded ? bounds_[idx] : idx * chunk;
    const int64_t e = bounded ? bounds_[idx + 1] : std::min(n, b + chunk);
    try {
      (*fn)(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
    }
    done_chunks_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_main() {
  t_inside_pool = true;
  uint32_t seen = 0;
  for (;;) {
    int spins = 0;
    uint32_t gen;
    for (;;) {
      gen = uint32_t(ticket_.load(std::memory_order_acquire) >> 32);
      if (gen != seen || stop_.load(std::memory_order_acquire)) break;
      if (++spins < kSpinIters) {
        EV_CPU_RELAX();
        continue;
      }
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (uint32_t(ticket_.load(std::memory_order_seq_cst) >> 32) == seen && !stop_.load()) cv_work_.wait(lk);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      spins = 0;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen;
    run_chunks(gen);
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
  // At most kMaxChunks ranges (the ticket's 16 bits), each a multiple of the asked grain.
  const int64_t asked = (n + grain - 1) / grain;
  if (asked > kMaxChunks) grain *= (asked + kMaxChunks - 1) / kMaxChunks;

  std::lock_guard<std::mutex> call_lk(call_mu_);
  n_bounds_.store(0, std::memory_order_relaxed);
  chunk_.store(grain, std::memory_order_relaxed);
  run_job(n, (n + grain - 1) / grain, fn);
}

// Called with call_mu_ held and the ranges' fields written.
void ThreadPool::run_job(int64_t n, int64_t n_chunks, const std::function<void(int64_t, int64_t)>& fn) {
  fn_.store(&fn, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  done_chunks_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  const uint32_t gen = ++generation_;
  ticket_.store(uint64_t(gen) << 32 | uint64_t(n_chunks) << 16, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lk(mu_); }
    cv_work_.notify_all();
  }

  t_inside_pool = true;
  run_chunks(gen);
  t_inside_pool = false;

  while (done_chunks_.load(std::memory_order_acquire) != n_chunks) EV_CPU_RELAX();
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || t_inside_pool || n == 1) {
    fn(0, n);
    return;
  }
  // Shrinking ranges (guided scheduling): with fixed ones of an eighth of the job each (4 per
  // thread, as before), the threads of a 2-thread decode spent about 7% of their time waiting
  // for each other's last range.
  const int64_t parts = 2 * int64_t(n_threads_), min_size = std::max<int64_t>(1, n / (8 * parts));
  int64_t bounds[kMaxBounds + 1];
  int nb = 0;
  bounds[0] = 0;
  for (int64_t b = 0; b < n && nb < kMaxBounds; ++nb)
    bounds[nb + 1] = b = std::min(n, b + std::max(min_size, (n - b + parts - 1) / parts));
  if (bounds[nb] != n) {  // more ranges than the table holds: fixed ones
    parallel_for_grain(n, std::max<int64_t>(1, (n + 4 * n_threads_ - 1) / (4 * n_threads_)), fn);
    return;
  }
  std::lock_guard<std::mutex> call_lk(call_mu_);
  std::copy(bounds, bounds + nb + 1, bounds_);
  n_bounds_.store(nb, std::memory_order_relaxed);
  run_job(n, nb, fn);
}

}  // namespace edgevlm
