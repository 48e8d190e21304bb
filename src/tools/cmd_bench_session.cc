// `edgevlm bench-session`: time-to-first-token after the question is submitted, with the image
// encoded while the user types (attach, typing delay, ask) and without (typing delay, then attach
// and ask at submit time, as `edgevlm run` does); medians over repetitions; peak RSS of the process.
// Without -m/--mmproj it writes a random pair of moderate size (src/model/random_model.h,
// src/vision/mmproj.h) into --workdir and measures that.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/pages.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/session.h"
#include "model/random_model.h"
#include "tools/bench_runtime.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

int bench_session_main(int argc, char** argv) {
  CLI::App app{"Time-to-first-token after the question, with and without encoding the image while the user types",
               "edgevlm bench-session"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  EngineOptions o;
  o.threads = ThreadPool::hardware_threads();
  std::string vocab_from = "tests/vision_parity/fixtures/tiny.gguf";
  std::string image, question = "Describe the image.", workdir = "/tmp/edgevlm-bench-session", mode = "both";
  int typing_ms = 2000, reps = 5, n_predict = 4;
  app.add_option("-m,--model", o.model_path, "Language model GGUF (default: write a random pair to --workdir)");
  app.add_option("--mmproj", o.mmproj_path, "Vision model GGUF");
  app.add_option("--image", image, "Image file")->required();
  app.add_option("-p,--prompt", question, "The question")->capture_default_str();
  app.add_option("--typing-ms", typing_ms, "Simulated typing delay between attaching and asking")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--reps", reps, "Repetitions per mode")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("-n,--n-predict", n_predict, "Tokens per answer")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--mode", mode, "both | decoupled | sync")->capture_default_str();
  app.add_option("-t,--threads", o.threads, "Threads")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-tiles", o.tiling.max_tiles, "Most grid tiles (default: the model's)")->check(CLI::Range(1, 64));
  app.add_option("--ctx", o.n_ctx, "KV cache size")->check(CLI::NonNegativeNumber);
  app.add_option("--workdir", workdir, "Where the random pair is written")->capture_default_str();
  app.add_option("--vocab-from", vocab_from, "The random pair's vocabulary (a GGUF with tokenizer keys)")
      ->capture_default_str();
  app.add_flag("--low-memory", o.low_memory, "Session in low-memory mode");
  app.add_option("--vit-batch", o.vit_batch, "Tiles per ViT batch")->capture_default_str()->check(CLI::Range(1, 1024));
  bool no_pipeline = false;
  app.add_flag("--no-pipeline", no_pipeline, "Encode tiles without the pipeline");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  o.vit_pipeline = !no_pipeline;
  EV_CHECK(mode == "both" || mode == "decoupled" || mode == "sync", "--mode %s: expected both, decoupled or sync",
           mode.c_str());
  EV_CHECK(o.model_path.empty() == o.mmproj_path.empty(), "give both -m and --mmproj, or neither");

  if (o.model_path.empty()) {
    // Moderate random pair: a 12-layer 768-wide Q8_0 decoder with the fixture's vocabulary and a
    // 6-block 384-wide ViT on 224-pixel tiles (16-pixel patches, 4 tiles + thumbnail).
    std::string cmd = "mkdir -p '" + workdir + "'";
    EV_CHECK(std::system(cmd.c_str()) == 0, "cannot create %s", workdir.c_str());
    o.model_path = workdir + "/llm.gguf";
    o.mmproj_path = workdir + "/mmproj.gguf";
    if (!std::ifstream(o.model_path)) {
      RandomLlamaSpec ls;
      ls.n_embd = 768, ls.n_layer = 12, ls.n_head = 12, ls.n_head_kv = 4, ls.n_ff = 2048, ls.n_ctx = 2048;
      ls.weight_type = GGMLType::Q8_0;
      ls.vocab_from = vocab_from;
      write_random_llama(o.model_path, ls);
    }
    if (!std::ifstream(o.mmproj_path)) {
      RandomMmprojSpec ms;
      ms.image_size = 224, ms.patch_size = 16, ms.n_embd = 384, ms.n_ff = 1536, ms.n_layer = 6, ms.n_head = 6;
      ms.projection_dim = 768;
      ms.weight_type = GGMLType::Q8_0;
      ms.max_tiles = 4;
      write_random_mmproj(o.mmproj_path, ms);
    }
  }

  auto engine = Engine::load(o);
  Session s(engine);
  GenerateParams gp;
  gp.n_predict = n_predict;
  gp.sampler.temperature = 0;
  gp.stop_at_eog = false;

  // Submit → first streamed text (the first sampled token), or → end of ask when nothing streamed.
  auto ask_ttft = [&](const Timer& submit, SessionAnswer* out) {
    double first = -1;
    *out = s.ask(question, gp, [&](std::string_view) {
      if (first < 0) first = submit.elapsed_ms();
      return true;
    });
    return first >= 0 ? first : submit.elapsed_ms();
  };
  auto sleep_ms = [](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };

  // Warm-up: page in both files, fill caches.
  s.attach_image(image);
  {
    SessionAnswer a;
    ask_ttft(Timer(), &a);
    std::printf("[pair] %s + %s: %d tiles, ViT+projector %.1f ms, prompt %d positions, %d threads%s\n",
                o.model_path.c_str(), o.mmproj_path.c_str(), a.n_tiles, a.vit_ms, a.result.n_prompt, engine->pool().size(),
                o.low_memory ? ", low-memory" : "");
  }
  std::vector<double> dec, sync, dec_wait, sync_wait;
  for (int r = 0; r < reps; ++r) {
    SessionAnswer a;
    if (mode != "sync") {
      s.reset();
      s.attach_image(image);
      sleep_ms(typing_ms);
      Timer submit;
      dec.push_back(ask_ttft(submit, &a));
      dec_wait.push_back(a.wait_ms);
    }
    if (mode != "decoupled") {
      s.reset();
      sleep_ms(typing_ms);
      Timer submit;
      s.attach_image(image);
      sync.push_back(ask_ttft(submit, &a));
      sync_wait.push_back(a.wait_ms);
    }
  }
  std::printf("| mode | typing ms | TTFT median ms | of it waiting for the encode ms | reps |\n|---|---|---|---|---|\n");
  if (!dec.empty())
    std::printf("| decoupled (encode while typing) | %d | %.1f | %.1f | %d |\n", typing_ms, median(dec),
                median(dec_wait), reps);
  if (!sync.empty())
    std::printf("| synchronous (encode at submit) | %d | %.1f | %.1f | %d |\n", typing_ms, median(sync),
                median(sync_wait), reps);
  std::printf("[memory] peak RSS %.1f MiB%s\n", proc_status_mib("VmHWM"), o.low_memory ? " (low-memory)" : "");
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(bench_session, "bench-session",
                "Time-to-first-token with and without encoding the image while the user types; peak RSS",
                bench_session_main);

}  // namespace edgevlm
