// A persistent pool of worker threads for data-parallel kernels. Workers poll briefly after a
// job (decode issues hundreds of small jobs per token, and waking a sleeping thread costs more
// than the job) and then sleep on a condition variable, so an idle pool costs no CPU. The
// caller works too and never waits for a worker that has not started: work is claimed in
// chunks, so a descheduled worker on a busy machine delays nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edgevlm {

class ThreadPool {
 public:
  // n_threads counts the calling thread too: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into contiguous ranges, runs fn(begin, end) on the workers and the caller,
  // returns when all are done. Ranges are handed out dynamically and shrink as the job goes (each
  // about a 2·size() part of what is left, down to a 16·size() part of n), so a core slowed by
  // other load does not hold the others up, and the threads finish close together at few claims
  // per job. Calls from inside fn run inline. The first exception thrown by fn is rethrown here
  // after every range has finished.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Like parallel_for but with ranges of at most `grain` items aligned to multiples of it (at most
  // 65535 ranges: a finer grain is coarsened to a multiple of itself).
  void parallel_for_grain(int64_t n, int64_t grain,
                          const std::function<void(int64_t begin, int64_t end)>& fn);

  // Number of hardware threads, at least 1.
  static int hardware_threads();

 private:
  void worker_main();
  void run_chunks(uint32_t gen);
  // Publishes a job of n_chunks ranges (fixed ones of chunk_ items, or bounds_ when n_bounds_ > 0),
  // runs its chunks here too and waits for the rest.
  void run_job(int64_t n, int64_t n_chunks, const std::function<void(int64_t, int64_t)>& fn);

  int n_threads_;
  std::vector<std::thread> workers_;

  std::mutex call_mu_;  // one parallel_for at a time from outside the pool

  // Wake-up of sleeping workers.
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};

  // The current job: fields written by the caller before the ticket is published, read by a
  // worker only after it claimed a chunk of the job (thread_pool.cc, "Protocol").
  std::atomic<uint64_t> ticket_{0};  // generation << 32 | chunk count << 16 | next chunk to claim
  uint32_t generation_ = 0;
  std::atomic<const std::function<void(int64_t, int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> chunk_{1};
  // parallel_for's shrinking ranges: chunk i is [bounds_[i], bounds_[i + 1]) while n_bounds_ > 0.
  static constexpr int kMaxBounds = 128;
  int64_t bounds_[kMaxBounds + 1] = {};
  std::atomic<int> n_bounds_{0};
  std::atomic<int64_t> done_chunks_{0};
  std::mutex err_mu_;
  std::exception_ptr error_;
};

}  // namespace edgevlm
