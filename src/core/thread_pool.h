// A persistent pool of worker threads for data-parallel kernels. Workers spin briefly after a
// job (decode issues hundreds of small jobs per token, and waking a sleeping thread costs more
// than the job) and then sleep on a condition variable, so an idle pool costs no CPU.
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
  // returns when all are done. Ranges are handed out dynamically (a few per thread), so a core
  // slowed by other load does not hold the others up. Calls from inside fn run inline. The
  // first exception thrown by fn is rethrown here after every range has finished.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Like parallel_for but with ranges of at most `grain` items aligned to multiples of it.
  void parallel_for_grain(int64_t n, int64_t grain,
                          const std::function<void(int64_t begin, int64_t end)>& fn);

  // Number of hardware threads, at least 1.
  static int hardware_threads();

 private:
  void worker_main(int index);
  void run_chunks();

  int n_threads_;
  std::vector<std::thread> workers_;

  std::mutex call_mu_;  // one parallel_for at a time from outside the pool

  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> busy_workers_{0};
  bool stop_ = false;

  // The current job (written before generation_ is bumped, read after).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::mutex err_mu_;
  std::exception_ptr error_;
};

}  // namespace edgevlm
