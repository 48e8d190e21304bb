#include "tools/bench_runtime.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <type_traits>

#include "core/pages.h"
#include "core/error.h"
#include "core/timer.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/prefill.h"
#include "engine/session.h"
#include "engine/vlm.h"
#include "formats/gguf.h"
#include "model/chat_template.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "tools/chart_png.h"
#include "vision/image.h"
#include "vision/mmproj.h"

namespace edgevlm {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos && c + 2 <= line.size()) return line.substr(c + 2);
    }
  return "unknown CPU";
}

std::vector<int> parse_int_list(const std::string& s) {
  std::vector<int> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    const std::string item = s.substr(b, e - b);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    EV_CHECK(!item.empty() && end && *end == 0 && v >= 1 && v <= (1 << 20), "'%s' in '%s' is not a positive number",
             item.c_str(), s.c_str());
    out.push_back(int(v));
    b = e + 1;
  }
  return out;
}

std::vector<std::pair<int, int>> parse_resolutions(const std::string& s) {
  std::vector<std::pair<int, int>> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    const std::string item = s.substr(b, e - b);
    int w = 0, h = 0;
    char tail = 0;
    EV_CHECK(std::sscanf(item.c_str(), "%dx%d%c", &w, &h, &tail) == 2 && w >= 1 && h >= 1 && w <= 16384 && h <= 16384,
             "'%s' in '%s' is not a resolution WIDTHxHEIGHT (1..16384)", item.c_str(), s.c_str());
    out.emplace_back(w, h);
    b = e + 1;
  }
  return out;
}

namespace {

// Runs fn in a child process (its own heap, page mappings, matmul pack cache and peak RSS) and
// returns what it returned; an exception in the child is rethrown here as edgevlm::Error.
template <class R>
R in_child(const std::function<R()>& fn) {
  static_assert(std::is_trivially_copyable_v<R>, "results cross a pipe as bytes");
  struct Msg {
    int ok = 0;
    R r{};
    char err[512] = {0};
  };
  std::fflush(stdout);
  std::fflush(stderr);
  int fd[2];
  EV_CHECK(pipe(fd) == 0, "pipe: %s", std::strerror(errno));
  const pid_t pid = fork();
  EV_CHECK(pid >= 0, "fork: %s", std::strerror(errno));
  if (pid == 0) {
    close(fd[0]);
    auto msg = std::make_unique<Msg>();
    try {
      msg->r = fn();
      msg->ok = 1;
    } catch (const std::exception& e) {
      std::snprintf(msg->err, sizeof msg->err, "%s", e.what());
    }
    const char* p = reinterpret_cast<const char*>(msg.get());
    size_t left = sizeof(Msg);
    while (left > 0) {
      const ssize_t n = write(fd[1], p, left);
      if (n <= 0) break;
      p += n, left -= size_t(n);
    }
    close(fd[1]);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  close(fd[1]);
  auto msg = std::make_unique<Msg>();
  char* p = reinterpret_cast<char*>(msg.get());
  size_t got = 0;
  while (got < sizeof(Msg)) {
    const ssize_t n = read(fd[0], p + got, sizeof(Msg) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EV_CHECK(got == sizeof(Msg), "benchmark process died (%s %d)", WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  EV_CHECK(msg->ok, "%s", msg->err);
  return msg->r;
}

// Smooth gradients with some texture: what the encoders see costs the same whatever the pixels,
// and resizing has real work to do.
Image synthetic_image(int w, int h) {
  Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = uint8_t(x * 255 / std::max(1, w - 1));
      p[1] = uint8_t(y * 255 / std::max(1, h - 1));
      p[2] = uint8_t((x ^ y) & 255);
    }
  return img;
}

std::string now_utc() {
  char b[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return b;
}

}  // namespace

void bench_vit_sweep(const std::string& mmproj_path, ThreadPool& pool, int reps) {
  auto f = GGUFFile::open(mmproj_path);
  auto mm = MmprojModel::load(*f);
  const VisionConfig& vc = mm->config();
  TilingOverrides ov;
  ov.strategy = "relaxed";
  ov.max_tiles = 16;  // the paper's 4×4 candidate set, in which a 1:2 image gets 2:4
  const TilingConfig tc = tiling_config_for(vc, ov);
  const int T = vc.image_size;
  const Image img = synthetic_image(2 * T, 4 * T);
  const ImageEmbeddings warm = encode_image(*mm, img, tc, pool, VitOptions(0, false));
  const int n = warm.n_tiles;
  std::printf("\nViT tile-batch sweep: %s, %dx%d image → grid %s%s = %d tiles of %d px, %d threads (+1 producer "
              "thread when pipelined), medians of %d\n",
              mmproj_path.c_str(), img.width, img.height, grid_str(warm.grid).c_str(),
              warm.thumbnail_index >= 0 ? " + thumbnail" : "", n, T, pool.size(), reps);
  std::printf("| ViT batch | pipeline | ViT ms per tile | ViT ms | prepare ms | blocks ms | stages overlapped ms | "
              "encode ms (all) | saved vs serial ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::vector<int> batches;
  for (int b : {1, 2, 4, 6, n})
    if (b <= n && std::find(batches.begin(), batches.end(), b) == batches.end()) batches.push_back(b);
  for (int b : batches) {
    std::vector<double> wall[2], prep[2], blk[2], over[2], total[2];
    for (int r = 0; r < reps; ++r)
      for (int pi = 0; pi < 2; ++pi) {  // interleaved, so that drift hits both alike
        const ImageEmbeddings e = encode_image(*mm, img, tc, pool, VitOptions(b, pi == 1));
        wall[pi].push_back(e.vit_timings.wall_ms);
        prep[pi].push_back(e.vit_timings.prepare_ms);
        blk[pi].push_back(e.vit_timings.blocks_ms);
        over[pi].push_back(e.vit_timings.hidden_ms());
        total[pi].push_back(e.preprocess_ms + e.vit_ms + e.projector_ms);
      }
    for (int pi = 0; pi < 2; ++pi) {
      const double w = median(wall[pi]);
      const bool piped = pi == 1 && (n + b - 1) / b > 1;
      std::printf("| %d%s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | ", b, b == n ? " (all)" : "",
                  pi == 0 ? "off" : piped ? "on" : "on (1 batch: nothing to overlap)", w / n, w, median(prep[pi]),
                  median(blk[pi]), median(over[pi]), median(total[pi]));
      if (!piped) std::printf("– |\n");
      else std::printf("%.1f |\n", median(wall[0]) - w);
    }
  }
  std::printf("prepare = cut + normalise + thumbnail resize + unfold + patch embedding; stages overlapped = prepare + "
              "blocks − ViT wall; saved = serial ViT ms − pipelined ViT ms (the latency hidden)\n");
}

void bench_prefill_sweep(const std::string& model_path, int threads, int n_tokens, const std::vector<int>& chunks,
                         int reps, KvType kv) {
  struct Result {
    double tok_s = 0, peak_mib = 0, base_mib = 0, kv_mib = 0;
    bool hwm_reset = false;
    double runs[32] = {0};
    int n_runs = 0;
  };
  std::printf("\nChunked-prefill sweep: %s, %d-token input from an empty cache, %d threads, KV cache %s, one process "
              "per chunk size, medians of %d\n",
              model_path.c_str(), n_tokens, threads, kv_type_name(kv), reps);
  std::printf("| chunk | prefill tok/s | runs | peak RSS MiB | RSS before prefill MiB | activations (peak − before) MiB "
              "|\n|---:|---:|---|---:|---:|---:|\n");
  double kv_mib = 0;
  for (int chunk : chunks) {
    std::fprintf(stderr, "[prefill-sweep] chunk %d ...\n", chunk);
    const Result r = in_child<Result>([&] {
      Result res;
      auto f = GGUFFile::open(model_path);
      ThreadPool pool(threads);
      auto m = LlmModel::load(*f, &pool);
      const LlmConfig& c = m->config();
      KvCache cache(c, n_tokens + 1, kv);
      res.kv_mib = double(cache.bytes()) / (1 << 20);
      std::mt19937 rng(7);
      std::vector<int32_t> toks(static_cast<size_t>(n_tokens));
      for (int32_t& t : toks) t = int32_t(rng() % uint32_t(std::max(1, c.n_vocab - 256)));
      std::vector<float> emb(size_t(n_tokens) * c.n_embd), logits(size_t(c.n_vocab));
      m->embed_tokens(toks.data(), n_tokens, emb.data());
      // Make the KV cache resident (it is allocated untouched), and page the weights in (and repack
      // them) with one decode step, which needs next to no activations.
      {
        const std::vector<float> zeros(size_t(n_tokens + 1) * cache.kv_dim());
        for (int l = 0; l < cache.n_layer(); ++l) cache.write(l, 0, n_tokens + 1, zeros.data(), zeros.data());
      }
      cache.clear();
      llm_forward(*m, cache, emb.data(), 1, logits.data(), false, pool);
      cache.clear();
      res.hwm_reset = reset_peak_rss();
      res.base_mib = proc_status_mib("VmRSS");
      std::vector<double> ts;
      for (int i = 0; i < std::min(reps, 32); ++i) {
        cache.clear();
        const Timer t;
        prefill_chunked(*m, cache, emb.data(), n_tokens, chunk, pool);
        ts.push_back(n_tokens / (t.elapsed_ms() / 1e3));
        res.runs[res.n_runs++] = ts.back();
      }
      res.tok_s = median(ts);
      res.peak_mib = proc_status_mib("VmHWM");
      return res;
    });
    kv_mib = r.kv_mib;
    std::string runs;
    for (int i = 0; i < r.n_runs; ++i) runs += (i ? " " : "") + std::to_string(int(std::lround(r.runs[i])));
    std::printf("| %d | %.1f | %s | %.1f | %.1f | %.1f%s |\n", chunk, r.tok_s, runs.c_str(), r.peak_mib, r.base_mib,
                r.peak_mib - r.base_mib, r.hwm_reset ? "" : " (peak not resettable: includes loading)");
  }
  std::printf("KV cache %.1f MiB, resident before the prefills (so not in the activation column)\n", kv_mib);
}

void bench_paper_table(const PaperTableOptions& o) {
  EV_CHECK(!o.pairs.empty(), "--paper-table: give at least one --pair LABEL=LLM.gguf,MMPROJ.gguf");
  EV_CHECK(!o.resolutions.empty(), "--paper-table: no resolutions");
  struct Row {
    int grid_m = 0, grid_n = 0, tiles = 0, positions = 0, n_decode = 0;
    double init_s = 0, vit_s = 0, prefill_s = 0, decode_tok_s = 0, peak_mib = 0;
  };
  const double load0 = load_average();
  const std::string date = now_utc();
  // rows[pair][resolution] = the median row
  std::vector<std::vector<Row>> rows(o.pairs.size(), std::vector<Row>(o.resolutions.size()));
  const Timer all;
  for (size_t pi = 0; pi < o.pairs.size(); ++pi)
    for (size_t ri = 0; ri < o.resolutions.size(); ++ri) {
      const PaperPair& pair = o.pairs[pi];
      const auto [w, h] = o.resolutions[ri];
      std::vector<Row> runs;
      for (int round = 0; round < o.rounds; ++round) {
        std::fprintf(stderr, "[paper-table] %s %dx%d round %d/%d (%.0f s so far) ...\n", pair.label.c_str(), w, h,
                     round + 1, o.rounds, all.elapsed_ms() / 1e3);
        const Row r = in_child<Row>([&] {
          Row row;
          EngineOptions eo;  // as `edgevlm run` loads
          eo.model_path = pair.llm_path;
          eo.mmproj_path = pair.mmproj_path;
          eo.threads = o.threads;
          eo.kv_type = o.kv;
          eo.tiling.max_tiles = o.max_tiles;
          eo.vit_batch = o.vit_batch;
          eo.vit_pipeline = o.pipeline;
          eo.low_memory = o.low_memory;
          auto engine = Engine::load(eo);
          row.init_s = engine->load_ms() / 1e3;
          Session session(engine);
          session.attach_image_pixels(synthetic_image(w, h), "synthetic");
          GenerateParams gp;
          gp.n_predict = o.n_gen;
          gp.chunk_size = o.chunk;
          gp.sampler.temperature = 0;
          gp.stop_at_eog = false;
          // Asked at once: the wait is the whole encode (decode of the pixels, tiling, ViT, projector).
          const SessionAnswer a = session.ask("Describe the image in detail.", gp);
          const GenerateResult& g = a.result;
          EV_CHECK(a.image_errors.empty(), "%s", a.image_errors.empty() ? "" : a.image_errors[0].c_str());
          row.vit_s = a.wait_ms / 1e3;
          row.tiles = a.n_tiles;
          row.grid_m = a.grids.at(0).m, row.grid_n = a.grids.at(0).n;
          row.positions = a.n_positions;
          row.prefill_s = g.prefill_ms / 1e3;
          row.decode_tok_s = g.decode_tok_s();
          row.n_decode = g.n_decode;
          row.peak_mib = proc_status_mib("VmHWM");
          return row;
        });
        std::fprintf(stderr, "[paper-table]   %d tiles, init %.2f s, ViT %.2f s, prefill %d positions %.2f s, decode "
                     "%.2f tok/s, peak %.0f MiB\n",
                     r.tiles, r.init_s, r.vit_s, r.positions, r.prefill_s, r.decode_tok_s, r.peak_mib);
        runs.push_back(r);
      }
      Row m = runs[0];
      auto med = [&](double Row::*field) {
        std::vector<double> v;
        for (const Row& r : runs) v.push_back(r.*field);
        return median(v);
      };
      m.init_s = med(&Row::init_s), m.vit_s = med(&Row::vit_s), m.prefill_s = med(&Row::prefill_s);
      m.decode_tok_s = med(&Row::decode_tok_s), m.peak_mib = med(&Row::peak_mib);
      rows[pi][ri] = m;
    }

  std::string md = "## The paper's table, measured here\n\n";
  char b[1024];
  std::snprintf(b, sizeof b,
                "Machine: %s, %d threads, load average %.2f at the start and %.2f at the end. Date %s. Medians of %d "
                "round(s), each (model, resolution) in a fresh process: init = opening and loading both files "
                "(page cache warm after the first round), ViT = image encode (tiling, ViT batches of %d%s, projector; "
                "synthetic images, so no file decoding), prefill in chunks of %d, %d greedy decode steps, KV cache %s%s; peak memory = the "
                "process's VmHWM.\n\n",
                cpu_name().c_str(), o.threads, load0, load_average(), date.c_str(), o.rounds, o.vit_batch,
                o.pipeline ? ", pipelined" : "", o.chunk, o.n_gen, kv_type_name(o.kv),
                o.low_memory ? "; low-memory (the mmproj unmapped before the prefill)" : "");
  md += b;
  for (size_t pi = 0; pi < o.pairs.size(); ++pi) {
    std::snprintf(b, sizeof b,
                  "### %s\n\n`%s` + `%s`\n\n| image | grid | tiles | prompt positions | init s | ViT s | LLM prefill s "
                  "| decode tokens/s | peak memory MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
                  o.pairs[pi].label.c_str(), o.pairs[pi].llm_path.c_str(), o.pairs[pi].mmproj_path.c_str());
    md += b;
    for (size_t ri = 0; ri < o.resolutions.size(); ++ri) {
      const Row& r = rows[pi][ri];
      std::snprintf(b, sizeof b, "| %dx%d | %dx%d | %d | %d | %.3f | %.3f | %.3f | %.2f | %.0f |\n",
                    o.resolutions[ri].first, o.resolutions[ri].second, r.grid_m, r.grid_n, r.tiles, r.positions,
                    r.init_s, r.vit_s, r.prefill_s, r.decode_tok_s, r.peak_mib);
      md += b;
    }
    md += "\n";
  }
  md += "The paper (MediaTek Dimensity 9300, 768×1536, 2:4 grid + thumbnail): image 2.53 s (0.47 s load + 2.06 s "
        "encode), prefill 2.7 s, 24.4 tokens/s, 2.2 GB.\n";
  std::fputs(md.c_str(), stdout);
  if (!o.out_md.empty()) {
    std::ofstream f(o.out_md);
    f << md;
    EV_CHECK(f.good(), "cannot write %s", o.out_md.c_str());
    std::printf("[paper-table] Markdown written to %s\n", o.out_md.c_str());
  }
  if (!o.out_png.empty()) {
    std::vector<std::string> groups, series;
    for (const auto& [w, h] : o.resolutions) groups.push_back(std::to_string(w) + "x" + std::to_string(h));
    for (const PaperPair& p : o.pairs) series.push_back(p.label);
    auto panel = [&](const char* title, double Row::*field) {
      BarChart c{title, groups, series, {}};
      for (size_t pi = 0; pi < o.pairs.size(); ++pi) {
        std::vector<double> v;
        for (const Row& r : rows[pi]) v.push_back(r.*field);
        c.values.push_back(v);
      }
      return c;
    };
    write_png(o.out_png, draw_bar_charts({panel("ViT (image encode) s", &Row::vit_s),
                                          panel("LLM prefill s", &Row::prefill_s),
                                          panel("decode tokens/s", &Row::decode_tok_s),
                                          panel("peak memory MiB", &Row::peak_mib), panel("init (load) s", &Row::init_s)},
                                         960, 220));
    std::printf("[paper-table] chart written to %s\n", o.out_png.c_str());
  }
}

}  // namespace edgevlm
