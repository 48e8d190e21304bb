#include "tools/bench_kernels.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/pages.h"
#include "core/timer.h"
#include "formats/quant.h"
#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/matmul_blocks.h"
#include "ops/matmul_internal.h"
#include "tools/bench_runtime.h"

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

// The decode tiles' software prefetch distance (the prefetched read uses the same).
int decode_prefetch_bytes() {
  const int pf = detail::matmul_avx2_prefetch_bytes(0);
  detail::matmul_avx2_prefetch_bytes(pf);
  return pf;
}
// Lines per page the decode tiles prefetch (0: every line).
int decode_prefetch_page_lines() {
  const int lines = detail::matmul_avx2_prefetch_page_lines(0);
  detail::matmul_avx2_prefetch_page_lines(lines);
  return lines;
}

}  // namespace

ReadProbe::ReadProbe(size_t bytes, int threads) : threads_(threads) {
  EV_CHECK(threads >= 1 && bytes >= (size_t(1) << 20), "bandwidth benchmark: bad parameters");
  bytes_ = bytes / (size_t(threads) * 4096) * (size_t(threads) * 4096);
  // On 2 MiB pages where the kernel allows, as the weights' repacked copies are.
  buf_ = alloc_huge<uint8_t>(bytes_);
  EV_CHECK(buf_ != nullptr, "bandwidth benchmark: cannot allocate %zu MB", bytes_ >> 20);
  // Touched by the threads that will read it (first touch places the pages).
  const size_t slice = bytes_ / size_t(threads);
  run_threads(threads, [&](int t) {
    std::memset(buf_.get() + size_t(t) * slice, t + 1, slice);
    return 0.0;
  });
}

double ReadProbe::best_gbs(int reps) {
  EV_CHECK(reps >= 1, "bandwidth benchmark: bad parameters");
  const bool avx2 = cpu_has_avx2();
  const int prefetch = decode_prefetch_bytes();
  const int lines = decode_prefetch_page_lines();
  const size_t slice = bytes_ / size_t(threads_);
  double best = 0;
  // A plain read, and reads prefetched as the decode tiles can be (every line; lines per page).
  const int modes[][2] = {{0, 0}, {prefetch, 0}, {prefetch, std::max(lines, 1)}};
  for (int r = 0; r < reps; ++r)
    for (const auto& m : modes) {
      if (m[0] > 0 && !avx2) continue;
      const double ms = run_threads(threads_, [&](int t) {
        const uint8_t* p = buf_.get() + size_t(t) * slice;
        return avx2 ? bench_detail::read_sum_avx2(p, slice, m[0], m[1]) : read_sum_scalar(p, slice);
      });
      best = std::max(best, double(bytes_) / (ms * 1e6));
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
  if (detail::matmul_amx_active()) return "amx-bf16 tiles";
  if (!vnni) return "avx2 maddubs";
  return detail::matmul_int_kernels() == detail::IntKernels::AvxVnni ? "avx-vnni" : "avx512-vnni zmm";
}

double bench_peak_int8(int threads, int reps, bool vnni) {
  const long iters = 20'000'000;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    if (detail::matmul_amx_active()) {
      const long tile_iters = iters / 64;  // about as long as the vector loops
      const double ms = run_threads(threads, [&](int) { return bench_detail::amx_bf16_loop(tile_iters); });
      best = std::max(best, 32768.0 * double(tile_iters) * threads / (ms * 1e6));
    } else if (cpu_has_avx2() && vnni) {
      const bool zmm = detail::matmul_int_kernels() != detail::IntKernels::AvxVnni;
      const double ms = run_threads(threads, [&](int) {
        return zmm ? bench_detail::int8_loop_zmm(iters) : bench_detail::int8_loop_vnni(iters);
      });
      best = std::max(best, (zmm ? 640.0 : 320.0) * double(iters) * threads / (ms * 1e6));
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

namespace {

// A random matrix of type t (n_out rows of n_in) with its GemmAb label, and rows of random inputs.
struct GemmCase {
  std::vector<uint8_t> wq;
  WeightMatrix w;
  std::vector<float> x, y;
  GemmAb r;
};
GemmCase make_gemm_case(GGMLType t, int64_t n_in, int64_t n_out, int rows, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  GemmCase c;
  std::vector<float> wf(static_cast<size_t>(n_in));
  const size_t rb = row_bytes(t, n_in);
  c.wq.resize(rb * size_t(n_out));
  for (int64_t o = 0; o < n_out; ++o) {
    for (float& v : wf) v = nd(rng);
    quantize_row(t, wf.data(), c.wq.data() + size_t(o) * rb, n_in);
  }
  c.x.resize(size_t(rows) * size_t(n_in));
  for (float& v : c.x) v = nd(rng);
  c.y.resize(size_t(rows) * size_t(n_out));
  c.w = WeightMatrix::from_data(t, c.wq.data(), n_in, n_out);
  c.r.label = type_name(t) + " " + std::to_string(n_in) + "x" + std::to_string(n_out);
  c.r.macs = double(rows) * double(n_in) * double(n_out);
  return c;
}

// Runs each named variant once per round, the order rotating from round to round: a variant that
// always ran after another layout's copy had been through the caches measured up to 6% slow. Only
// run(v), one product, is timed; setup(v) before it and teardown(v) after it are not. Fills r's
// variants, median rates and geometric-mean ratios to the first.
void alternate_variants(GemmAb& r, const std::vector<std::string>& names, int reps,
                        const std::function<void(size_t)>& setup, const std::function<void(size_t)>& run,
                        const std::function<void(size_t)>& teardown) {
  const size_t nv = names.size();
  std::vector<std::vector<double>> rates(nv);
  std::vector<double> log_ratio(nv, 0.0);
  for (int i = 0; i < reps; ++i) {
    std::vector<double> ms(nv);
    for (size_t j = 0; j < nv; ++j) {
      const size_t v = (j + size_t(i)) % nv;
      setup(v);
      const double t0 = now_ms();
      run(v);
      ms[v] = std::max(now_ms() - t0, 1e-6);
      teardown(v);
    }
    for (size_t v = 0; v < nv; ++v) {
      rates[v].push_back(r.macs / (ms[v] * 1e6));
      log_ratio[v] += std::log(ms[0] / ms[v]);
    }
  }
  for (size_t v = 0; v < nv; ++v) {
    r.variants.push_back(names[v]);
    r.gmacs.push_back(median(rates[v]));
    r.vs_first.push_back(std::exp(log_ratio[v] / reps));
  }
}

}  // namespace

std::vector<GemmAb> bench_gemm_tilings(int rows, ThreadPool& pool, int reps) {
  EV_CHECK(rows >= 1 && reps >= 1, "gemm benchmark: bad parameters");
  EV_CHECK(cpu_has_avx2(), "gemm benchmark: the tilings compared are the AVX2 kernels'; this CPU runs others");
  struct Case {
    GGMLType type;
    int64_t n_in, n_out;
  };
  // bluelm-v-3b's decoder (Q4_0): FFN up/gate, FFN down, attention q/o; its so400m ViT (Q8_0) MLP up.
  const Case cases[] = {{GGMLType::Q4_0, 2560, 6912}, {GGMLType::Q4_0, 6912, 2560}, {GGMLType::Q4_0, 2560, 2560},
                        {GGMLType::Q8_0, 1152, 4304}};
  std::mt19937 rng(5);
  std::vector<GemmAb> out;
  for (const Case& cs : cases) {
    GemmCase c = make_gemm_case(cs.type, cs.n_in, cs.n_out, rows, rng);
    matmul(c.w, c.x.data(), rows, c.y.data(), pool);  // repacks the weights (shared by every tiling)
    struct Tiling {
      const char* name;
      bool wide, pairs;
      int tile_pairs = 0;  // of the 512-bit tiles (detail::matmul_avx512_tile_pairs; 0 by type)
    };
    std::vector<Tiling> tilings;
    if (detail::matmul_int_kernels() == detail::IntKernels::Avx512Vnni) {
      tilings.push_back({"512-bit, by type", true, true, 0});
      tilings.push_back({"512-bit, 6 groups", true, true, 3});
      tilings.push_back({"512-bit, 4 groups", true, true, 2});
    }
    tilings.push_back({"256-bit, 2 groups", false, true});
    tilings.push_back({"256-bit, 1 group", false, false});
    std::vector<std::string> names;
    for (const Tiling& t : tilings) names.push_back(t.name);
    const bool was_pairs = detail::matmul_avx2_group_pairs(true), was_wide = detail::matmul_avx512_wide_tiles(true);
    const int was_tile_pairs = detail::matmul_avx512_tile_pairs(0);
    alternate_variants(
        c.r, names, reps,
        [&](size_t v) {
          detail::matmul_avx2_group_pairs(tilings[v].pairs);
          detail::matmul_avx512_wide_tiles(tilings[v].wide);
          detail::matmul_avx512_tile_pairs(tilings[v].tile_pairs);
        },
        [&](size_t) { matmul(c.w, c.x.data(), rows, c.y.data(), pool); }, [](size_t) {});
    detail::matmul_avx2_group_pairs(was_pairs);
    detail::matmul_avx512_wide_tiles(was_wide);
    detail::matmul_avx512_tile_pairs(was_tile_pairs);
    matmul_forget(c.w);
    out.push_back(c.r);
  }
  // The block types llama-quantize writes (ops/matmul_blocks.h), on the FFN up/gate shape: each
  // kernel set this CPU has, and Q4_K's interleaved copy (matmul_blocks_prepare, built outside the
  // timing) under each set that has tiles for it.
  for (GGMLType type : {GGMLType::Q4_K, GGMLType::Q6_K, GGMLType::IQ4_XS}) {
    GemmCase c = make_gemm_case(type, 2560, 6912, rows, rng);
    struct Set {
      BlockKernels k;
      bool interleaved;
    };
    std::vector<Set> sets;
    if (matmul_blocks_prepare(c.w, pool))
      for (BlockKernels k : {BlockKernels::Avx512, BlockKernels::Avx2})
        if (block_kernels_available(k)) sets.push_back({k, true});
    matmul_blocks_forget(c.w.data);
    for (BlockKernels k : {BlockKernels::Avx512, BlockKernels::Avx2})
      if (block_kernels_available(k)) sets.push_back({k, false});
    std::vector<std::string> names;
    for (const Set& st : sets)
      names.push_back(std::string("blocks ") + block_kernels_name(st.k) + (st.interleaved ? " interleaved" : ""));
    alternate_variants(
        c.r, names, reps, [&](size_t v) { if (sets[v].interleaved) matmul_blocks_prepare(c.w, pool); },
        [&](size_t v) { matmul_blocks(c.w, c.x.data(), rows, c.y.data(), pool, sets[v].k); },
        [&](size_t) { matmul_blocks_forget(c.w.data); });
    out.push_back(c.r);
  }
  return out;
}

std::vector<GemvAb> bench_gemv(ThreadPool& pool, int reps, size_t bytes) {
  EV_CHECK(reps >= 1 && bytes >= (size_t(1) << 20), "gemv benchmark: bad parameters");
  EV_CHECK(cpu_has_avx2(), "gemv benchmark: the variants compared are the AVX2 kernels'; this CPU runs others");
  using detail::IntKernels;
  struct Case {
    GGMLType type;
    int64_t n_in, n_out;
  };
  // bluelm-v-3b's decoder: FFN up/gate (Q4_0), and a quarter of the output matrix (Q8_0).
  const Case cases[] = {{GGMLType::Q4_0, 2560, 6912}, {GGMLType::Q8_0, 2560, 25024}};
  struct Variant {
    IntKernels k;
    int prefetch;
    int page_lines = 1;  // lines prefetched per page ahead, 0 every line (detail::matmul_avx2_prefetch_page_lines)
    bool split = true;  // the cached copy's layout (detail::matmul_avx2_split_scales)
    bool wide = true;   // the Avx512Vnni set's 512-bit tiles (detail::matmul_avx512_wide_tiles)
  };
  const IntKernels best = detail::matmul_int_kernels();
  const int pf0 = decode_prefetch_bytes();
  const int lines0 = decode_prefetch_page_lines();
  std::vector<Variant> variants = {{best, pf0, lines0}, {best, pf0, 0},           {best, 0, lines0},
                                   {best, pf0, 2},      {best, pf0 * 2, lines0}, {best, pf0, lines0, false}};
  if (best == IntKernels::Avx512Vnni) variants.push_back({best, pf0, lines0, true, false});
  for (IntKernels k : {IntKernels::Avx512Vnni, IntKernels::AvxVnni, IntKernels::Avx2})
    if (k != best && detail::matmul_int_kernels_available(k)) variants.push_back({k, pf0, lines0});

  const int threads = pool.size();
  const size_t slice = bytes / size_t(threads) / 4096 * 4096;
  HugeBuffer<uint8_t> buf = alloc_huge<uint8_t>(slice * size_t(threads));
  EV_CHECK(buf != nullptr, "gemv benchmark: cannot allocate %zu MB", bytes >> 20);
  run_threads(threads, [&](int t) {
    std::memset(buf.get() + size_t(t) * slice, t + 1, slice);
    return 0.0;
  });

  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<GemvAb> out;
  for (const Case& c : cases) {
    const size_t rb = row_bytes(c.type, c.n_in), mat_bytes = rb * size_t(c.n_out);
    const int n_mats = int(std::max<size_t>(1, (bytes + mat_bytes - 1) / mat_bytes));
    // 64 quantized random rows, repeated (the values do not change the speed).
    std::vector<float> wf(size_t(c.n_in));
    std::vector<uint8_t> rows(rb * 64);
    for (int r = 0; r < 64; ++r) {
      for (float& v : wf) v = nd(rng);
      quantize_row(c.type, wf.data(), rows.data() + size_t(r) * rb, c.n_in);
    }
    std::vector<std::vector<uint8_t>> wq(static_cast<size_t>(n_mats));
    std::vector<WeightMatrix> ws;
    for (int m = 0; m < n_mats; ++m) {
      wq[size_t(m)].resize(mat_bytes);
      for (int64_t o = 0; o < c.n_out; ++o)
        std::memcpy(wq[size_t(m)].data() + size_t(o) * rb, rows.data() + size_t((o * 7 + m) % 64) * rb, rb);
      ws.push_back(WeightMatrix::from_data(c.type, wq[size_t(m)].data(), c.n_in, c.n_out));
    }
    std::vector<float> x(size_t(c.n_in)), y(size_t(c.n_out));
    for (float& v : x) v = nd(rng);
    // Repack every matrix for every kernel set first (Q8_0's copy differs between sets).
    for (const Variant& v : variants) {
      detail::matmul_use_int_kernels(v.k);
      detail::matmul_avx2_split_scales(v.split);
      detail::matmul_avx512_wide_tiles(v.wide);
      for (const WeightMatrix& w : ws) matmul(w, x.data(), 1, y.data(), pool);
    }
    const double total = double(mat_bytes) * n_mats;
    std::vector<std::vector<double>> gbs(variants.size()), frac(variants.size());
    std::vector<double> log_ratio(variants.size(), 0.0);
    for (int i = 0; i < reps; ++i) {
      double read_ms = 1e300;
      for (int mode = 0; mode < 3; ++mode)
        read_ms = std::min(read_ms, run_threads(threads, [&](int t) {
          return bench_detail::read_sum_avx2(buf.get() + size_t(t) * slice, std::min(slice, size_t(total) / size_t(threads)),
                                             mode == 0 ? 0 : pf0, mode == 2 ? std::max(lines0, 1) : 0);
        }));
      const double read_gbs = double(std::min(slice * size_t(threads), size_t(total))) / (read_ms * 1e6);
      // The order rotates from round to round, so that no variant always runs first after the read.
      std::vector<double> ms(variants.size());
      for (size_t j = 0; j < variants.size(); ++j) {
        const size_t v = (j + size_t(i)) % variants.size();
        detail::matmul_use_int_kernels(variants[v].k);
        detail::matmul_avx2_prefetch_bytes(variants[v].prefetch);
        detail::matmul_avx2_prefetch_page_lines(variants[v].page_lines);
        detail::matmul_avx2_split_scales(variants[v].split);
        detail::matmul_avx512_wide_tiles(variants[v].wide);
        const double t0 = now_ms();
        for (const WeightMatrix& w : ws) matmul(w, x.data(), 1, y.data(), pool);
        ms[v] = std::max(now_ms() - t0, 1e-6);
      }
      for (size_t v = 0; v < variants.size(); ++v) {
        gbs[v].push_back(total / (ms[v] * 1e6));
        frac[v].push_back(total / (ms[v] * 1e6) / read_gbs);
        log_ratio[v] += std::log(ms[0] / ms[v]);
      }
    }
    detail::matmul_use_int_kernels(best);
    detail::matmul_avx2_prefetch_bytes(pf0);
    detail::matmul_avx2_prefetch_page_lines(lines0);
    detail::matmul_avx2_split_scales(true);
    detail::matmul_avx512_wide_tiles(true);
    for (const WeightMatrix& w : ws) matmul_forget(w);
    for (size_t v = 0; v < variants.size(); ++v) {
      GemvAb r;
      r.label = type_name(c.type) + " " + std::to_string(c.n_in) + "x" + std::to_string(c.n_out) + " x" +
                std::to_string(n_mats);
      r.variant = std::string(detail::int_kernels_name(variants[v].k)) + ", prefetch " +
                  std::to_string(variants[v].prefetch) + " B" +
                  (variants[v].prefetch == 0      ? ""
                   : variants[v].page_lines == 0 ? " every line"
                                                 : " " + std::to_string(variants[v].page_lines) + " line/page") +
                  (variants[v].split ? "" : ", scales in groups") +
                  (variants[v].wide || variants[v].k != IntKernels::Avx512Vnni ? "" : ", 256-bit tiles");
      r.gbs = median(gbs[v]);
      r.frac_read = median(frac[v]);
      r.ratio = std::exp(log_ratio[v] / reps);
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace edgevlm
