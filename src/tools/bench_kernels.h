// Microbenchmarks of this machine's limits, for `edgevlm bench` to express its figures as
// fractions of them: memory read bandwidth (what bounds decode) and peak FMA and int8 multiply-add
// throughput (what bounds prefill and the ViT). Each runs `threads` OS threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/pages.h"
#include "core/thread_pool.h"

namespace edgevlm {

// Memory read bandwidth, GB/s (1e9 bytes): a buffer of `bytes` (≫ L3) split among the threads,
// read in passes that are each the best of a plain read and reads with software prefetch (as the
// decode tiles can: every line, or the first lines of each page), over 2 MiB pages where the
// kernel allows (as the weights' repacked copies are): the limit is the best read of the same kind
// of memory the decode kernels stream.
//
// The buffer is kept for the whole run, so that each run of a figure can also be paired with the
// bandwidth measured around it. On a shared machine the bandwidth left to one process moves
// from minute to minute (2 threads here: 47 to 72 GB/s within an hour); a median of runs over a
// best-of limit mixes busy and quiet moments, a median of paired ratios does not. The buffer stays
// resident (touched once): peak RSS figures subtract bytes().
class ReadProbe {
 public:
  ReadProbe(size_t bytes, int threads);
  double best_gbs(int reps);  // best of `reps` passes
  size_t bytes() const { return bytes_; }

 private:
  HugeBuffer<uint8_t> buf_;
  size_t bytes_;
  int threads_;
};

// GFLOP/s of fused multiply-adds (2 flops each): independent AVX2 FMA chains, best of `reps`.
double bench_peak_fma(int threads, int reps);
// G int8 multiply-adds/s of the instruction the Q8_0/Q4_0 GEMM kernels run: vpdpbusd when `vnni` (on
// 512-bit registers with the Avx512Vnni set, on 256-bit ones with AvxVnni, as detail::matmul_int_kernels();
// Zen 4 retires about twice the multiply-adds per cycle of the AVX2 sequence, Zen 5 twice again with
// 512-bit registers), else maddubs → madd → add,
// best of `reps`. The caller passes the kernels' setting (matmul_avx2_use_vnni), so that a
// "% of peak" compares the kernels with what their own instruction can do. One rep takes about
// 30 ms, so it can also be paired with each run of a figure (see ReadProbe).
// Where the products of several rows run on AMX (detail::matmul_amx_active()), the peak of its
// BF16 tile product instead.
double bench_peak_int8(int threads, int reps, bool vnni);
// The name of that peak's instruction for reports: "avx-vnni", "avx512-vnni zmm", "avx2 maddubs",
// "amx-bf16 tiles" or "scalar".
const char* int8_peak_kind(bool vnni);

// The x86 integer GEMM's tilings compared in one process, alternated `reps` times over a prefill
// chunk's `rows` activation rows so that load on a shared machine hits all alike: the default
// first (with the Avx512Vnni set, 512-bit tiles chosen by type, then of six 8-row weight groups and of
// four over 40 KiB slices), then 256-bit tiles of
// two groups, then of one group (the earlier kernels). With the current kernel set, on the pool's
// threads.
struct GemmAb {
  std::string label;                  // e.g. "q4_0 2560x6912"
  double macs = 0;                    // multiply-adds per product
  std::vector<std::string> variants;  // e.g. "512-bit, 4 groups"
  std::vector<double> gmacs;          // per variant: median G multiply-adds/s
  std::vector<double> vs_first;       // per variant: geometric mean over rounds of its rate ÷ the first's
};
std::vector<GemmAb> bench_gemm_tilings(int rows, ThreadPool& pool, int reps);

// Decode's matrix products (one activation row), which stream their weights from memory: for each
// case, matrices of one shape totalling at least `bytes` (≫ L3) are each multiplied once per round
// by each variant (the kernel sets this CPU has; the default set at other software prefetch
// distances and with the earlier layout of the cached copy, scales at each group's end), alternated with a read of a buffer of the same size on the same threads, `reps`
// rounds. What decode's "% of read bandwidth" is made of, kernel by kernel.
struct GemvAb {
  std::string label;     // e.g. "q4_0 2560x6912 x10"
  std::string variant;   // e.g. "avx512-vnni, prefetch 2048 B[, scales in groups]"
  double gbs = 0;        // median GB/s of weights (GGUF bytes) multiplied
  double frac_read = 0;  // median over rounds of this variant's GB/s ÷ the same round's read GB/s
  double ratio = 0;      // geometric mean over rounds of the first variant's time ÷ this one's
};
std::vector<GemvAb> bench_gemv(ThreadPool& pool, int reps, size_t bytes);

// Scalar or AVX2 bodies (bench_kernels_avx2.cc), per thread: return a value so nothing is elided.
namespace bench_detail {
// Software prefetch distance (0 for none), of every line or of page_lines lines per 4 KiB page.
double read_sum_avx2(const void* p, size_t bytes, int prefetch = 0, int page_lines = 0);
double fma_loop_avx2(long iters);   // 160 flops per iteration
double int8_loop_avx2(long iters);  // 256 int8 multiply-adds per iteration
double int8_loop_vnni(long iters);  // 320 int8 multiply-adds per iteration; call only with AVX-VNNI
double int8_loop_zmm(long iters);   // 640 int8 multiply-adds per iteration (512-bit); only with AVX512-VNNI
double amx_bf16_loop(long iters);   // 32768 BF16 multiply-adds per iteration; only with detail::matmul_amx_active()
}  // namespace bench_detail

}  // namespace edgevlm
