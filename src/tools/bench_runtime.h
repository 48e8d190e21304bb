// The runtime benchmarks of issue 6 behind `edgevlm bench`: the ViT tile-batch sweep with and
// without pipelining, the chunked-prefill sweep (speed and activation memory per chunk size, the
// paper's Figure 8) and the paper's table (per image resolution: tiles, init, ViT, prefill,
// decode, peak memory), written as Markdown and drawn as a PNG chart. Also the small helpers the
// bench commands share.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "model/kv_cache.h"

namespace edgevlm {

double median(std::vector<double> v);
double load_average();  // 1-minute; -1 when unknown
std::string cpu_name();

// A 2:4 image (2 tiles wide, 4 high, plus the thumbnail: 9 tiles, the paper's example) encoded
// with ViT batches of 1, 2, 4, 6 and all tiles, each with and without the pipeline; prints a
// Markdown table of medians over `reps` (after one warm-up encode).
void bench_vit_sweep(const std::string& mmproj_path, ThreadPool& pool, int reps);

// Prefill of n_tokens random tokens in chunks of each size, each size in a process of its own so
// that its peak RSS is its own: tokens/s (median of reps) and the activation memory (peak RSS
// during the prefills minus the RSS before them, weights and KV cache already resident).
void bench_prefill_sweep(const std::string& model_path, int threads, int n_tokens, const std::vector<int>& chunks,
                         int reps, KvType kv);

struct PaperPair {
  std::string label, llm_path, mmproj_path;
};
struct PaperTableOptions {
  std::vector<PaperPair> pairs;
  std::vector<std::pair<int, int>> resolutions;  // width × height
  int rounds = 1, threads = 2, n_gen = 32, chunk = 128, vit_batch = 4, max_tiles = 0;  // 0: the model's
  bool pipeline = true, low_memory = false;
  KvType kv = kDefaultKvType;
  std::string out_md, out_png;  // empty: Markdown to stdout only, no chart
};
// The paper's table measured here: each (pair, resolution, round) runs in a fresh process (load,
// encode a synthetic image, prefill the chat prompt, decode n_gen greedy tokens), so init is a
// real load and peak memory that round's own. Medians over rounds; progress on stderr.
void bench_paper_table(const PaperTableOptions& o);

// "384x768,768x768" → {{384, 768}, {768, 768}}; throws edgevlm::Error naming a bad item.
std::vector<std::pair<int, int>> parse_resolutions(const std::string& s);
// "32,128,512" → {32, 128, 512}; throws edgevlm::Error naming a bad item.
std::vector<int> parse_int_list(const std::string& s);

}  // namespace edgevlm
