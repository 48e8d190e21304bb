#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace edgevlm {
namespace {

TEST(ThreadPoolTest, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 3, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPoolTest, ManySmallJobsAndGrain) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int it = 0; it < 2000; ++it)
    pool.parallel_for(5, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 10000);
  pool.parallel_for_grain(10, 4, [&](int64_t b, int64_t e) {
    EXPECT_EQ(b % 4, 0);
    EXPECT_LE(e - b, 4);
  });
}

// Back-to-back jobs of different chunk counts: every index of every job runs exactly once and no
// range runs after its parallel_for returned. Catches a worker that read one job's ticket and the
// next job's fields (a chunk run twice, the caller released early while a range still ran): the
// pool once let that happen and tests of the pipelined ViT crashed one run in ~700 under load.
TEST(ThreadPoolTest, BackToBackJobsNeverMixed) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::atomic<int> bad{0};
    for (int job = 0; job < 60000; ++job) {
      const int64_t n = 1 + (job * 7919) % 23;
      std::vector<int> hits(size_t(n), 0);  // plain ints: each index belongs to one range
      std::atomic<bool> returned{false};
      pool.parallel_for_grain(n, 1 + job % 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
        if (returned.load()) bad++;
      });
      returned = true;
      for (int64_t i = 0; i < n; ++i)
        if (hits[size_t(i)] != 1) bad++;
      if (bad.load()) FAIL() << threads << " threads, job " << job << ": a range ran twice, late or never";
    }
  }
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> sum{0};
  pool.parallel_for(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      pool.parallel_for(3, [&](int64_t b2, int64_t e2) { sum += int(e2 - b2); });
  });
  EXPECT_EQ(sum.load(), 12);
}

TEST(ThreadPoolTest, ExceptionsPropagateAndPoolSurvives) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, [&](int64_t b, int64_t) {
    if (b > 50) throw std::runtime_error("boom");
  }), std::runtime_error);
  std::atomic<int> n{0};
  pool.parallel_for(10, [&](int64_t b, int64_t e) { n += int(e - b); });
  EXPECT_EQ(n.load(), 10);
  EXPECT_THROW(ThreadPool(0), std::exception);
}

}  // namespace
}  // namespace edgevlm
