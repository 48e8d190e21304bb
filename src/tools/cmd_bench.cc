// `edgevlm bench`: the engine's speed on this machine, each figure next to the machine limit that
// bounds it, measured in the same run:
//   decode tokens/s    ↔ memory read bandwidth: fraction = weight bytes per token × tokens/s ÷ GB/s
//   prefill tokens/s   ↔ peak int8 multiply-add rate of the instruction the Q8_0/Q4_0 kernels run
//                        (vpdpbusd with AVX-VNNI or AVX512-VNNI, else maddubs; --no-vnni forces the latter for
//                        both), or FMA rate (F16/F32)
//   ViT ms per tile    ↔ the same, for the mmproj's matrices
//   peak RSS (getrusage), and the load average, since the machines here are shared.
// The limits are measured first (best of several passes); each decode, prefill and ViT run is also
// divided by its limit measured around it (the mean of one pass just before and one just after:
// single passes caught brief dips, one ViT run measured "106% of the peak"), and the median of
// those paired ratios printed.
// --attention times the attention kernel over F32/F16/INT8 KV caches (both q·k modes).
// --gemm compares the integer GEMM's tilings (512-bit tiles where the CPU has AVX512-VNNI, 256-bit
// tiles of two weight groups, of one) in one process.
// --gemv compares decode's kernels (one activation row) streaming weights from memory, each against
//        the read bandwidth measured in the same rounds.
// --vit-sweep, --prefill-sweep and --paper-table are the runtime benchmarks of issue 6
// (tools/bench_runtime.h); with any of them the plain measurements are skipped.
#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/prefill.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "ops/attention.h"
#include "ops/cpu_features.h"
#include "ops/matmul_internal.h"  // the integer kernels' VNNI switch
#include "tools/bench_kernels.h"
#include "tools/bench_runtime.h"
#include "tools/commands.h"
#include "vision/mmproj.h"
#include "vision/vit.h"

namespace edgevlm {
namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// "; 84.1% of <what> (median; runs: 83.2 84.1 85.0)"
void print_paired(const char* what, const std::vector<double>& fracs) {
  std::printf("; %.1f%% of %s (median; runs:", 100 * median(fracs), what);
  for (double f : fracs) std::printf(" %.1f", 100 * f);
  std::printf(")");
}

bool integer_kernels(GGMLType t) { return t == GGMLType::Q8_0 || t == GGMLType::Q4_0; }

// Multiply-adds of one weight matrix per activation row.
double macs(const WeightMatrix& w) { return double(w.n_in) * double(w.n_out); }

struct Limits {
  double bw_gbs = 0, fma_gflops = 0, int8_gops = 0;
  const char* int8_kind = "";
  // The peak of the instruction the quantized products of several rows run (AMX's BF16 tile
  // product where they run on AMX).
  std::string peak_name(bool ints) const {
    if (!ints) return "FMA peak";
    std::string name = std::strncmp(int8_kind, "amx", 3) == 0 ? "peak (" : "int8 peak (";
    name += int8_kind;
    name += ')';
    return name;
  }
};

std::string json_num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", std::isfinite(v) ? v : 0.0);
  return b;
}

void attention_bench(int n_head, int n_head_kv, int head_dim, ThreadPool& pool, int reps) {
  std::printf("\nattention kernel (%d heads / %d KV heads of %d, %d threads), microseconds per call, median of %d:\n",
              n_head, n_head_kv, head_dim, pool.size(), reps);
  std::printf("  %-22s %12s %12s %12s %12s\n", "KV cache", "decode@512", "decode@2048", "decode@4096", "chunk128@512");
  struct Mode {
    const char* name;
    KvType type;
    QkMode qk;
  };
  const Mode modes[] = {{"f32", KvType::F32, QkMode::Float},
                        {"f16", KvType::F16, QkMode::Float},
                        {"q8 (dequantize q·k)", KvType::Q8, QkMode::Float},
                        {"q8 (int8 q·k)", KvType::Q8, QkMode::Int8}};
  LlmConfig c;
  c.n_layer = 1, c.n_head = n_head, c.n_head_kv = n_head_kv, c.head_dim = head_dim, c.n_embd = n_head * head_dim;
  const int n_ctx = 4096, kv_dim = n_head_kv * head_dim, q_dim = n_head * head_dim;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> k(size_t(n_ctx) * kv_dim), v(k.size()), q(size_t(128) * q_dim), out(q.size());
  for (float& x : k) x = nd(rng);
  for (float& x : v) x = nd(rng);
  for (float& x : q) x = nd(rng);
  const QkMode prev = attention_qk_mode();
  for (const Mode& m : modes) {
    KvCache cache(c, n_ctx, m.type);
    cache.write(0, 0, n_ctx, k.data(), v.data());
    set_attention_qk_mode(m.qk);
    auto time_it = [&](int n_q, int pos0) {
      AttentionArgs a;
      a.q = q.data(), a.q_stride = q_dim, a.out = out.data(), a.out_stride = q_dim;
      a.n_q = n_q, a.pos0 = pos0, a.n_head = n_head, a.n_head_kv = n_head_kv, a.head_dim = head_dim;
      a.scale = 1.0f / std::sqrt(float(head_dim));
      cache.attention_view(0, a);
      std::vector<double> ts;
      attention(a, pool);  // warm-up
      for (int r = 0; r < reps; ++r) {
        const Timer t;
        attention(a, pool);
        ts.push_back(t.elapsed_ms() * 1e3);
      }
      return median(ts);
    };
    std::printf("  %-22s %12.1f %12.1f %12.1f %12.1f\n", m.name, time_it(1, 511), time_it(1, 2047), time_it(1, 4095),
                time_it(128, 384));
  }
  set_attention_qk_mode(prev);
}

// Decode with attention's K/V prefetch on and off (attention_avx2.cc), alternated in this process
// so that the machine's load hits both alike: blocks of up to 8 steps from the prompt's cache
// (truncated back after each), 2·rounds blocks. Prints the medians and the median ratio of
// adjacent blocks.
void kv_prefetch_ab(const LlmModel& m, KvCache& cache, int n_prompt, int n_gen, ThreadPool& pool, int rounds) {
  const int steps = std::min(n_gen, 8);
  const LlmConfig& c = m.config();
  std::vector<float> e1(size_t(c.n_embd)), logits(size_t(c.n_vocab));
  const bool prev = attention_kv_prefetch();
  std::vector<double> on, off, ratio;
  int32_t next = 1;
  for (int r = 0; r < 2 * rounds + 2; ++r) {  // the first pair warms up
    const bool pf = r % 2 == 0;
    set_attention_kv_prefetch(pf);
    cache.truncate(n_prompt);
    const Timer t;
    for (int g = 0; g < steps; ++g) {
      m.embed_tokens(&next, 1, e1.data());
      llm_forward(m, cache, e1.data(), 1, logits.data(), false, pool);
      next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double tok_s = steps / (t.elapsed_ms() / 1e3);
    if (r < 2) continue;
    (pf ? on : off).push_back(tok_s);
    if (!pf) ratio.push_back(on.back() / tok_s);
  }
  set_attention_kv_prefetch(prev);
  std::printf("decode at %d positions, attention's K/V prefetch on / off (%d-step blocks alternated %d times): "
              "%.2f / %.2f tok/s, on/off %.3fx (median of adjacent pairs)\n",
              n_prompt, steps, rounds, median(on), median(off), median(ratio));
}

int bench_main(int argc, char** argv) {
  CLI::App app{"Measure decode and prefill tokens/s, ViT ms per tile and peak memory, each as a fraction of\n"
               "this machine's limits measured in the same run (memory bandwidth; peak FMA and int8 rates).",
               "edgevlm bench"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  std::string model_path, mmproj_path, kv_type = kv_type_name(kDefaultKvType);
  int threads = 2, n_prompt = 512, n_gen = 32, chunk = kDefaultPrefillChunk, reps = 3, tiles = 4, bw_mb = 1024, gemv_mb = 128;
  bool no_limits = false, json = false, attn = false, no_vnni = false, no_amx = false, gemm = false, gemv = false;
  app.add_option("-m,--model", model_path, "Language model GGUF");
  app.add_option("--mmproj", mmproj_path, "Vision GGUF (ViT ms per tile)");
  app.add_option("-t,--threads", threads, "Threads")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("-p,--prompt", n_prompt, "Prompt tokens to prefill")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("-n,--gen", n_gen, "Tokens to decode after the prompt")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--chunk", chunk, "Prefill chunk size")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("-r,--reps", reps, "Repetitions (medians are reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--tiles", tiles, "Tiles per ViT run (one batch)")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--kv-type", kv_type, "KV cache: q8 | f16 | f32")->capture_default_str();
  app.add_option("--bw-mb", bw_mb, "Buffer of the bandwidth benchmark, MB (well above the L3 cache)")
      ->capture_default_str()->check(CLI::Range(16, 1 << 16));
  app.add_flag("--no-limits", no_limits, "Skip the machine-limit microbenchmarks");
  app.add_flag("--no-amx", no_amx,
               "Run products of several rows (prefill, the ViT) on the integer kernels even where the CPU has AMX-BF16 "
               "(as EDGEVLM_NO_AMX=1 does)");
  app.add_flag("--no-vnni", no_vnni,
               "Run the integer kernels without AVX-VNNI (the AVX2 path of CPUs that lack it) and measure the "
               "int8 peak of that path's instruction");
  app.add_flag("--attention", attn, "Also time the attention kernel over F32/F16/INT8 KV caches, and with -m decode with its K/V prefetch on and off");
  app.add_flag("--gemv", gemv,
               "Compare decode's integer kernels (one activation row; each kernel set this CPU has, and "
               "software prefetch distances) streaming --gemv-mb MB of weights, against a read of as "
               "many bytes in the same rounds (medians of max(--reps, 15) alternated rounds)");
  app.add_option("--gemv-mb", gemv_mb, "Weights per case of --gemv, MB (well above the L3 cache)")
      ->check(CLI::Range(16, 4096));
  app.add_flag("--gemm", gemm,
               "Also compare the integer GEMM's tilings (512-bit tiles where the CPU has AVX512-VNNI, 256-bit "
               "tiles of two weight groups, of one) on --chunk rows of "
               "bluelm-v-3b's matrix shapes, alternated --reps times in this process");
  app.add_flag("--json", json, "End with one JSON line of all figures");
  bool vit_sweep = false, prefill_sweep = false, paper = false, no_pipeline = false, low_memory = false;
  int sweep_tokens = 2048, rounds = 1, vit_batch = kDefaultVitBatch, max_tiles = 0;
  std::string chunks = "32,128,512,2048", resolutions = "384x768,768x768,768x1152,768x1536,768x1920", md_out, png_out;
  std::vector<std::string> pairs;
  app.add_flag("--vit-sweep", vit_sweep,
               "ViT tile-batch sweep on a 2:4 image (batches 1, 2, 4, 6, all; pipelined and not); needs --mmproj");
  app.add_flag("--prefill-sweep", prefill_sweep,
               "Chunked-prefill sweep: tokens/s and activation memory per chunk size; needs -m");
  app.add_option("--sweep-tokens", sweep_tokens, "Input tokens of --prefill-sweep")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--chunks", chunks, "Chunk sizes of --prefill-sweep")->capture_default_str();
  app.add_flag("--paper-table", paper,
               "The paper's table per image resolution (tiles, init, ViT, prefill, decode, peak memory) for each "
               "--pair (or -m/--mmproj), as Markdown (--md) and a PNG chart (--png)");
  app.add_option("--pair", pairs, "LABEL=LLM.gguf,MMPROJ.gguf for --paper-table (repeatable)");
  app.add_option("--resolutions", resolutions, "Image sizes WxH of --paper-table")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds per (pair, resolution) of --paper-table (medians reported)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--md", md_out, "Write the --paper-table Markdown to this file");
  app.add_option("--png", png_out, "Draw the --paper-table chart into this PNG file");
  app.add_option("--vit-batch", vit_batch, "Tiles per ViT batch (--paper-table)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-tiles", max_tiles, "Most grid tiles per image (--paper-table; default: the model's)")
      ->check(CLI::Range(1, 64));
  app.add_flag("--no-pipeline", no_pipeline, "Encode tiles without the pipeline (--paper-table)");
  app.add_flag("--low-memory", low_memory, "Unmap the ViT before the prefill, as run --low-memory (--paper-table)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nRun 'edgevlm bench --help' for the options.\n", e.what());
    return 1;
  }
  try {
    const KvType kvt = parse_kv_type(kv_type);
    // Before any weights are repacked (Q8_0's packed layout depends on the kernel set).
    const bool vnni = !no_vnni && detail::matmul_avx2_has_vnni();
    detail::matmul_avx2_use_vnni(vnni);
    if (no_amx) detail::matmul_amx_enable(false);
    const bool amx = detail::matmul_amx_active();
    ThreadPool pool(threads);
    std::vector<std::pair<std::string, double>> fig;  // for --json
    const double load0 = load_average();
    std::printf("edgevlm bench: %s, %d threads, %s kernels%s, load average %.2f\n", cpu_name().c_str(), threads,
                !cpu_has_avx2() ? "scalar" : detail::int_kernels_name(detail::matmul_int_kernels()),
                amx ? " + AMX-BF16 for prefill and the ViT" : "", load0);
    fig.emplace_back("threads", threads);
    fig.emplace_back("amx", amx ? 1 : 0);
    fig.emplace_back("load_start", load0);

    if (vit_sweep || prefill_sweep || paper) {
      EV_CHECK(!vit_sweep || !mmproj_path.empty(), "--vit-sweep needs --mmproj");
      EV_CHECK(!prefill_sweep || !model_path.empty(), "--prefill-sweep needs -m");
      const std::vector<int> chunk_list = parse_int_list(chunks);
      PaperTableOptions po;
      if (paper) {
        for (const std::string& p : pairs) {
          const size_t eq = p.find('='), comma = p.find(',', eq == std::string::npos ? 0 : eq);
          EV_CHECK(eq != std::string::npos && eq > 0 && comma != std::string::npos && comma > eq + 1 &&
                       comma + 1 < p.size(),
                   "--pair %s: expected LABEL=LLM.gguf,MMPROJ.gguf", p.c_str());
          po.pairs.push_back({p.substr(0, eq), p.substr(eq + 1, comma - eq - 1), p.substr(comma + 1)});
        }
        if (po.pairs.empty()) {
          EV_CHECK(!model_path.empty() && !mmproj_path.empty(), "--paper-table needs --pair or -m and --mmproj");
          po.pairs.push_back({"model", model_path, mmproj_path});
        }
        po.resolutions = parse_resolutions(resolutions);
        po.rounds = rounds, po.threads = threads, po.n_gen = n_gen, po.chunk = chunk, po.vit_batch = vit_batch;
        po.max_tiles = max_tiles, po.pipeline = !no_pipeline, po.low_memory = low_memory, po.kv = kvt;
        po.out_md = md_out, po.out_png = png_out;
      }
      if (vit_sweep) bench_vit_sweep(mmproj_path, pool, reps);
      if (prefill_sweep) bench_prefill_sweep(model_path, threads, sweep_tokens, chunk_list, reps, kvt);
      if (paper) bench_paper_table(po);
      std::printf("load average %.2f at the end\n", load_average());
      return 0;
    }

    Limits lim;
    std::unique_ptr<ReadProbe> probe;  // kept to pair each run with the bandwidth around it
    auto int8_now = [&] { return bench_peak_int8(threads, 1, vnni); };  // one pass, for pairing
    if (!no_limits) {
      probe = std::make_unique<ReadProbe>(size_t(bw_mb) << 20, threads);
      lim.bw_gbs = probe->best_gbs(5);
      lim.fma_gflops = bench_peak_fma(threads, 3);
      lim.int8_gops = bench_peak_int8(threads, 3, vnni);
      lim.int8_kind = int8_peak_kind(vnni);
      std::printf("limits: read bandwidth %.2f GB/s (%d MB buffer) | FMA %.1f GFLOP/s | %s %.1f G multiply-adds/s\n",
                  lim.bw_gbs, bw_mb, lim.fma_gflops, lim.peak_name(true).c_str(), lim.int8_gops);
      fig.emplace_back("bandwidth_gbs", lim.bw_gbs);
      fig.emplace_back("peak_fma_gflops", lim.fma_gflops);
      fig.emplace_back("peak_int8_gops", lim.int8_gops);
      fig.emplace_back("peak_int8_vnni", vnni ? 1 : 0);  // which instruction peak_int8_gops is of
      fig.emplace_back("int_kernels", int(detail::matmul_int_kernels()));  // 0 avx2, 1 avx-vnni, 2 avx512-vnni
    }

    if (!model_path.empty()) {
      const Timer load_t;
      auto f = GGUFFile::open(model_path);
      // As `edgevlm run` and `generate` load: the matrices repacked now, on the pool.
      auto m = LlmModel::load(*f, &pool);
      const LlmConfig& c = m->config();
      const double load_ms = load_t.elapsed_ms();
      const int n_ctx = n_prompt + n_gen + 1;
      KvCache cache(c, n_ctx, kvt);
      std::printf("model: %s (%s, %d layers, hidden %d, %d/%d heads of %d, ff %d, vocab %d), %s weights %s; "
                  "KV cache %s %.1f MB for %d positions\n",
                  model_path.c_str(), c.arch.c_str(), c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff,
                  c.n_vocab, type_name(m->layers()[0].wq.type).c_str(),
                  (std::to_string(m->weight_bytes_per_token() / 1000000) + " MB/token").c_str(), kv_type_name(kvt),
                  double(cache.bytes()) / 1e6, n_ctx);
      std::mt19937 rng(7);
      std::vector<int32_t> toks(static_cast<size_t>(n_prompt));
      for (int32_t& t : toks) t = int32_t(rng() % uint32_t(std::max(1, c.n_vocab - 256)));
      std::vector<float> emb(size_t(n_prompt) * c.n_embd), e1(size_t(c.n_embd)), logits(size_t(c.n_vocab));
      m->embed_tokens(toks.data(), n_prompt, emb.data());
      std::vector<double> pre, dec;
      std::vector<double> pre_peak, dec_read;  // the limits measured around each run (paired)
      {  // warm-up: a short prefill and one decode step bring the mapped weights into memory
        const int nw = std::min(n_prompt, 8);
        prefill_chunked(*m, cache, emb.data(), nw, chunk, pool);
        llm_forward(*m, cache, emb.data(), 1, logits.data(), false, pool);
      }
      for (int r = 1; r <= reps; ++r) {
        cache.clear();
        const double peak_before = probe ? int8_now() : 0;
        Timer tp;
        std::vector<float> last = prefill_chunked(*m, cache, emb.data(), n_prompt, chunk, pool);
        const double pms = tp.elapsed_ms();
        if (probe) pre_peak.push_back((peak_before + int8_now()) / 2);
        int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
        const double read_before = probe ? probe->best_gbs(1) : 0;
        Timer td;
        for (int g = 0; g < n_gen; ++g) {
          m->embed_tokens(&next, 1, e1.data());
          llm_forward(*m, cache, e1.data(), 1, logits.data(), false, pool);
          next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
        const double dms = td.elapsed_ms();
        if (probe) dec_read.push_back((read_before + probe->best_gbs(1)) / 2);
        pre.push_back(n_prompt / (pms / 1e3));
        dec.push_back(n_gen / (dms / 1e3));
      }
      const double pt = median(pre), dt = median(dec);
      const double wbytes = double(m->weight_bytes_per_token());
      // KV bytes a decode step reads, at the middle of the decoded span.
      const double kv_read = double(cache.bytes_per_position()) * (n_prompt + n_gen / 2.0);
      const double dec_gbs = wbytes * dt / 1e9;
      // Prefill work per token: every matrix but the output (computed once per prompt), plus attention.
      double mac_tok = 0;
      for (const LlmLayer& L : m->layers())
        mac_tok += macs(L.wq) + macs(L.wk) + macs(L.wv) + macs(L.wo) + macs(L.w_gate) + macs(L.w_up) + macs(L.w_down);
      const double attn_mac = 2.0 * c.n_layer * double(c.n_head) * c.head_dim * (n_prompt + 1) / 2.0;
      const bool ints = integer_kernels(m->layers()[0].wq.type);
      const double peak_mac = ints ? lim.int8_gops * 1e9 : lim.fma_gflops * 1e9 / 2;
      std::printf("load %.0f ms\n", load_ms);
      std::printf("prefill %d tokens (chunk %d): %.1f tok/s [runs:", n_prompt, chunk, pt);
      for (double x : pre) std::printf(" %.1f", x);
      std::printf("]");
      if (peak_mac > 0)
        std::printf("  = %.1f%% of %s (%.1f G multiply-adds/s of %.1f)", 100 * (mac_tok + attn_mac) * pt / peak_mac,
                    lim.peak_name(ints).c_str(), (mac_tok + attn_mac) * pt / 1e9, peak_mac / 1e9);
      // Each run over the limit measured around it; the median of those ratios.
      std::vector<double> pre_paired, dec_paired;
      for (size_t i = 0; i < pre_peak.size() && ints; ++i) pre_paired.push_back((mac_tok + attn_mac) * pre[i] / (pre_peak[i] * 1e9));
      for (size_t i = 0; i < dec_read.size(); ++i) dec_paired.push_back(wbytes * dec[i] / 1e9 / dec_read[i]);
      if (!pre_paired.empty()) print_paired("int8 peak measured around each run", pre_paired);
      std::printf("\ndecode %d tokens: %.2f tok/s [runs:", n_gen, dt);
      for (double x : dec) std::printf(" %.2f", x);
      std::printf("]  weights %.2f GB/s", dec_gbs);
      if (lim.bw_gbs > 0) std::printf(" = %.1f%% of bandwidth (with KV reads %.1f%%)", 100 * dec_gbs / lim.bw_gbs,
                                      100 * (wbytes + kv_read) * dt / 1e9 / lim.bw_gbs);
      if (!dec_paired.empty()) print_paired("read bandwidth measured around each run", dec_paired);
      std::printf("\n");
      fig.emplace_back("prefill_tok_s", pt);
      fig.emplace_back("decode_tok_s", dt);
      fig.emplace_back("weight_bytes_per_token", wbytes);
      fig.emplace_back("decode_weight_gbs", dec_gbs);
      fig.emplace_back("prefill_gmacs", (mac_tok + attn_mac) * pt / 1e9);
      if (lim.bw_gbs > 0) fig.emplace_back("decode_frac_bandwidth", dec_gbs / lim.bw_gbs);
      if (peak_mac > 0) fig.emplace_back("prefill_frac_peak", (mac_tok + attn_mac) * pt / peak_mac);
      if (!dec_paired.empty()) fig.emplace_back("decode_frac_paired", median(dec_paired));
      if (!pre_paired.empty()) fig.emplace_back("prefill_frac_paired", median(pre_paired));
      fig.emplace_back("kv_cache_mb", double(cache.bytes()) / 1e6);
      if (attn) {
        kv_prefetch_ab(*m, cache, n_prompt, n_gen, pool, std::max(reps, 10));
        attention_bench(c.n_head, c.n_head_kv, c.head_dim, pool, std::max(reps, 5));
      }
    } else if (attn) {
      attention_bench(32, 8, 80, pool, std::max(reps, 5));  // bluelm-v-3b's decoder
    }

    if (!mmproj_path.empty()) {
      Timer tl;
      auto f = GGUFFile::open(mmproj_path);
      auto mm = MmprojModel::load(*f);
      const double vit_load_ms = tl.elapsed_ms();  // the weights' repacking comes with the first run
      const VisionConfig& vc = mm->config();
      const int T = vc.image_size, N = vc.n_patches(), D = vc.n_embd;
      std::mt19937 rng(3);
      std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
      std::vector<float> px(size_t(tiles) * 3 * T * T);
      for (float& x : px) x = ud(rng);
      std::vector<double> ms, peak;
      for (int r = 0; r <= reps; ++r) {
        const double peak_before = probe && r > 0 ? int8_now() : 0;
        Timer t;
        std::vector<float> out = vit_forward(*mm, px.data(), tiles, pool, tiles);
        if (r > 0) ms.push_back(t.elapsed_ms() / tiles);
        if (probe && r > 0) peak.push_back((peak_before + int8_now()) / 2);
      }
      const double tile_ms = median(ms);
      double mac = macs(mm->patch_embd) * N;
      for (const VitBlock& b : mm->blocks)
        // The model's work: a padded down-projection's zero inputs do not count.
        mac += (macs(b.q) + macs(b.k) + macs(b.v) + macs(b.o) + macs(b.up) + double(vc.n_ff) * b.down.n_out) * N;
      mac += 2.0 * double(N) * N * D * vc.n_layer;  // attention
      const bool ints = integer_kernels(mm->blocks.empty() ? GGMLType::F32 : mm->blocks[0].q.type);
      const double peak_mac = ints ? lim.int8_gops * 1e9 : lim.fma_gflops * 1e9 / 2;
      std::printf("ViT load %.0f ms\n", vit_load_ms);
      std::printf("ViT (%d×%d tile, patch %d, %d layers, width %d, %s): %.1f ms per tile in batches of %d [runs:", T, T,
                  vc.patch_size, vc.n_layer, D, type_name(mm->blocks.empty() ? GGMLType::F32 : mm->blocks[0].q.type).c_str(),
                  tile_ms, tiles);
      for (double x : ms) std::printf(" %.1f", x);
      std::printf("]");
      if (peak_mac > 0)
        std::printf("  = %.1f%% of %s (%.1f G multiply-adds/s)", 100 * mac / (tile_ms / 1e3) / peak_mac,
                    lim.peak_name(ints).c_str(), mac / (tile_ms / 1e3) / 1e9);
      std::vector<double> paired;
      for (size_t i = 0; i < peak.size() && ints; ++i) paired.push_back(mac / (ms[i] / 1e3) / (peak[i] * 1e9));
      if (!paired.empty()) print_paired("int8 peak measured around each run", paired);
      std::printf("\n");
      fig.emplace_back("vit_load_ms", vit_load_ms);
      fig.emplace_back("vit_ms_per_tile", tile_ms);
      fig.emplace_back("vit_gmacs_per_tile", mac / 1e9);
      if (peak_mac > 0) fig.emplace_back("vit_frac_peak", mac / (tile_ms / 1e3) / peak_mac);
      if (!paired.empty()) fig.emplace_back("vit_frac_paired", median(paired));
    }
    if (gemm) {
      const int gemm_reps = std::max(reps, 5);
      std::printf("\nint8 GEMM tilings, %d activation rows, %d threads, %s kernels, medians of %d alternated rounds:\n",
                  chunk, threads, detail::int_kernels_name(detail::matmul_int_kernels()), gemm_reps);
      std::printf("  %-18s %-18s %10s %9s %s\n", "weights", "tiles", "G MAC/s", "vs first",
                  lim.int8_gops > 0 ? (std::string("% of ") + lim.peak_name(true)).c_str() : "");
      for (const GemmAb& r : bench_gemm_tilings(chunk, pool, gemm_reps)) {
        for (size_t v = 0; v < r.variants.size(); ++v) {
          std::printf("  %-18s %-18s %10.1f %8.2fx", v == 0 ? r.label.c_str() : "", r.variants[v].c_str(), r.gmacs[v],
                      r.vs_first[v]);
          if (lim.int8_gops > 0) std::printf("  %5.1f%%", 100 * r.gmacs[v] / lim.int8_gops);
          std::printf("\n");
          std::string key = "gemm_" + r.label + "_" + r.variants[v];
          for (char& ch : key) if (ch == ' ' || ch == ',') ch = '_';
          fig.emplace_back(key + "_gmacs", r.gmacs[v]);
          fig.emplace_back(key + "_vs_first", r.vs_first[v]);
        }
      }
    }
    if (gemv) {
      const int gemv_reps = std::max(reps, 15);
      std::printf("\ndecode matrix products (1 activation row), %d threads, ~%d MB of weights per case, medians of "
                  "%d alternated rounds:\n",
                  threads, gemv_mb, gemv_reps);
      std::printf("  %-22s %-46s %8s %12s %10s\n", "weights", "kernels", "GB/s", "% of read", "vs first");
      for (const GemvAb& r : bench_gemv(pool, gemv_reps, size_t(gemv_mb) << 20)) {
        std::printf("  %-22s %-46s %8.1f %11.0f%% %9.2fx\n", r.label.c_str(), r.variant.c_str(), r.gbs,
                    100 * r.frac_read, r.ratio);
        std::string key = "gemv_" + r.label + "_" + r.variant;
        for (char& ch : key) if (ch == ' ' || ch == ',') ch = '_';
        fig.emplace_back(key + "_gbs", r.gbs);
        fig.emplace_back(key + "_frac_read", r.frac_read);
      }
    }
    if (model_path.empty() && mmproj_path.empty() && !attn && !gemm && !gemv && no_limits)
      std::printf("nothing to measure: give -m MODEL, --mmproj FILE, --attention, --gemm, --gemv, or drop --no-limits\n");

    // The probe's buffer was resident from the start, beside whatever the peak was.
    const double probe_mb = probe ? double(probe->bytes()) / (1 << 20) : 0.0;
    const double rss = peak_rss_mb() - probe_mb, load1 = load_average();
    std::printf("peak RSS %.0f MB%s; load average %.2f at the end\n", rss,
                probe ? " (not counting the bandwidth probe's buffer)" : "", load1);
    fig.emplace_back("peak_rss_mb", rss);
    fig.emplace_back("load_end", load1);
    if (json) {
      std::string s = "{";
      for (size_t i = 0; i < fig.size(); ++i) s += (i ? ", \"" : "\"") + fig[i].first + "\": " + json_num(fig[i].second);
      std::printf("%s}\n", s.c_str());
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace

EDGEVLM_COMMAND(bench, "bench", "Decode/prefill tokens/s, ViT ms per tile, peak RSS, against this machine's limits",
                bench_main);

}  // namespace edgevlm
