#include "tools/cli_util.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/pages.h"
#include "core/thread_pool.h"
#include "core/timer.h"

namespace edgevlm {

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  app.set_version_flag("--version", std::string("edgevlm ") + EDGEVLM_VERSION);
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nRun '%s --help' for the options.\n", e.what(), app.get_name().c_str());
    return 1;
  }
}

void add_kv_type_option(CLI::App& app, KvType& type) {
  const CLI::Validator known(
      [](std::string& s) -> std::string {
        try {
          parse_kv_type(s);
          return {};
        } catch (const Error& e) {
          return e.what();
        }
      },
      "q8|f16|f32");
  app.add_option_function<std::string>(
         "--kv-type", [&type](const std::string& s) { type = parse_kv_type(s); },
         "KV cache storage: q8 (INT8, the default) | f16 | f32 (exact)")
      ->check(known)
      ->default_str(kv_type_name(type));
}

namespace {
uint64_t random_seed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}
}  // namespace

void add_sampling_options(CLI::App& app, SamplerParams& p) {
  p.seed = random_seed();
  app.add_option("--temp", p.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", p.top_k, "Keep the K most likely tokens; 0 = off")->capture_default_str();
  app.add_option("--top-p", p.top_p, "Nucleus sampling: keep the smallest set with this total probability; 1 = off")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--min-p", p.min_p, "Drop tokens below this fraction of the top probability; 0 = off")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--repeat-penalty", p.repeat_penalty, "Penalty for tokens seen in the last --repeat-last-n; 1 = off")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--repeat-last-n", p.repeat_last_n, "Window of the repetition penalty; 0 = off, -1 = all")
      ->capture_default_str();
  app.add_option_function<int64_t>(
         "--seed", [&p](int64_t s) { p.seed = s >= 0 ? uint64_t(s) : random_seed(); },
         "RNG seed for sampling; -1 = random")
      ->default_str("-1");
}

}  // namespace edgevlm

namespace edgevlm {
namespace {

// Prints "[load-model] FILE ..." once a stage has run for a second, and how long it took when it
// ends; stages shorter than a second print nothing.
class StderrProgress {
 public:
  ~StderrProgress() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void operator()(const Progress& p) {
    std::unique_lock<std::mutex> lk(mu_);
    if (p.fraction <= 0) {
      label_ = std::string("[") + p.stage + "] " + p.what;
      active_ = true;
      printed_ = false;
      timer_.reset();
      ++generation_;
      if (!thread_.joinable()) thread_ = std::thread([this] { watch(); });
      lk.unlock();
      cv_.notify_all();
    } else if (p.fraction >= 1 && active_) {
      if (printed_) std::fprintf(stderr, "%s: done in %.1f s\n", label_.c_str(), timer_.elapsed_ms() / 1e3);
      active_ = false;
      lk.unlock();
      cv_.notify_all();
    }
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait(lk, [&] { return stop_ || (active_ && !printed_); });
      if (stop_) return;
      const uint64_t gen = generation_;
      const double left_ms = 1000 - timer_.elapsed_ms();
      if (left_ms > 0 &&
          cv_.wait_for(lk, std::chrono::duration<double, std::milli>(left_ms),
                       [&] { return stop_ || !active_ || generation_ != gen; }))
        continue;
      std::fprintf(stderr, "%s ...\n", label_.c_str());
      printed_ = true;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  std::string label_;
  Timer timer_;
  uint64_t generation_ = 0;
  bool active_ = false, printed_ = false, stop_ = false;
};

}  // namespace

void add_engine_options(CLI::App& app, EngineFlags& f, VisionFlags vision) {
  EngineOptions& o = f.opt;
  if (o.threads <= 0) o.threads = ThreadPool::hardware_threads();
  app.add_option("-m,--model", o.model_path, "Language model GGUF file")->required();
  if (vision != VisionFlags::None) {
    auto* mm = app.add_option("--mmproj", o.mmproj_path, "Vision model GGUF file (clip / mmproj)");
    if (vision == VisionFlags::Required) mm->required();
    app.add_option("--tiling", o.tiling.strategy, "relaxed | llava-next | internvl | single | idefics3 | idefics3-mtmd | internvl-mtmd | lfm2 | lfm2-mtmd | qwen2vl (default: the model's)");
    app.add_option("--max-tiles", o.tiling.max_tiles, "Most grid tiles per image (default: the model's)")
        ->check(CLI::Range(1, 64));
    app.add_option("--vit-compat", o.vit_compat,
                   "mtmd: llama.cpp mtmd's ViT where it departs from the model's authors (InternViT's class-token "
                   "position row); default: the authors'")
        ->check(CLI::IsMember({"", "mtmd"}));
    app.add_option("--resample", o.tiling.resample,
                   "Image resampling: bicubic | lanczos | llama-cpp-bicubic | llama-cpp-bilinear | CANVAS,THUMBNAIL | mtmd "
                   "(llama.cpp mtmd's for the model family; default: the family's own)");
    app.add_option("--alpha", o.tiling.alpha, "α of relaxed aspect-ratio matching (default: the model's)")
        ->check(CLI::Range(0.0, 10.0));
    app.add_option("--vit-batch", o.vit_batch, "Tiles per ViT batch")->capture_default_str()->check(CLI::Range(1, 1024));
    app.add_flag("--no-pipeline", f.no_pipeline, "Prepare each ViT batch only after the previous one (no overlap)");
    app.add_flag("--low-memory", o.low_memory,
                 "Map the ViT weights only while encoding and drop the LLM's pages meanwhile (lower peak RSS)");
  }
  app.add_option("-t,--threads", o.threads, "Threads (default: hardware concurrency)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--ctx", o.n_ctx, "KV cache size in tokens (default: the model's context length, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  add_kv_type_option(app, o.kv_type);
  const CLI::Validator lora_spec(
      [](std::string& s) -> std::string {
        try {
          parse_lora_spec(s);
          return {};
        } catch (const Error& e) {
          return e.what();
        }
      },
      "FILE[:SCALE]");
  app.add_option_function<std::vector<std::string>>(
         "--lora",
         [&o](const std::vector<std::string>& v) {
           for (const std::string& s : v) o.loras.push_back(parse_lora_spec(s));
         },
         "LoRA adapter GGUF (llama.cpp's adapter format) on the decoder, or on the ViT and projector when its "
         "general.architecture is clip, scaled by SCALE (default 1); repeatable")
      ->check(lora_spec)
      ->allow_extra_args(false)
      ->type_name("FILE[:SCALE]");
  app.add_option_function<std::string>(
         "--lora-mode",
         [&o](const std::string& s) { o.lora_mode = s == "on-the-fly" ? LoraMode::OnTheFly : LoraMode::Auto; },
         "auto: merge LoRA adapters into F32 matrices at load, apply them on the fly to the others | on-the-fly: "
         "never merge")
      ->check(CLI::IsMember({"auto", "on-the-fly"}))
      ->default_str("auto");
  app.add_option("--chat-template", o.chat_template,
                 "chatml | llama3 | gemma | phi3 | lfm2 | smolvlm | none | auto (auto: recognised from the model's "
                 "tokenizer.chat_template)")
      ->capture_default_str();
}

EngineOptions finish_engine_options(const EngineFlags& f, bool quiet) {
  EngineOptions o = f.opt;
  o.vit_pipeline = !f.no_pipeline;
  if (!quiet) {
    auto reporter = std::make_shared<StderrProgress>();
    o.progress = [reporter](const Progress& p) { (*reporter)(p); };
  }
  return o;
}

GenerateParams AnswerFlags::params() const {
  GenerateParams gp;
  gp.n_predict = n_predict;
  gp.chunk_size = chunk;
  gp.sampler = sampling;
  for (const std::string& s : stop) gp.stop_strings.push_back(unescape(s));
  gp.stop_at_eog = !ignore_eos;
  return gp;
}

void add_answer_options(CLI::App& app, AnswerFlags& f) {
  app.add_option("-n,--n-predict", f.n_predict, "Tokens to generate at most; -1 = until the context is full")
      ->capture_default_str();
  add_sampling_options(app, f.sampling);
  app.add_option("--chunk", f.chunk, "Prefill chunk size in tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--stop", f.stop, "Stop when this text appears (not printed); repeatable; \\n and \\t are escapes")
      ->allow_extra_args(false);  // --stop A B is an error, not two stop strings
  app.add_flag("--ignore-eos", f.ignore_eos, "Keep generating past end-of-generation tokens");
}

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    switch (s[++i]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      default: out += '\\'; out += s[i]; break;
    }
  }
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EV_CHECK(in.good(), "cannot open prompt file '%s'", path.c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  EV_CHECK(!in.bad(), "cannot read prompt file '%s'", path.c_str());
  return ss.str();
}

bool print_piece(std::string_view piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
  return true;
}

void print_timing(const GenerateResult& r, double load_ms, int n_images, int n_tiles, double vit_ms, double wait_ms) {
  std::string s = "[timing]";
  char b[256];
  if (load_ms > 0) {
    std::snprintf(b, sizeof b, " load %.1f ms |", load_ms);
    s += b;
  }
  if (n_images > 0) {
    std::snprintf(b, sizeof b, " images %d tiles %d | ViT %.1f ms | waited for encode %.1f ms |", n_images, n_tiles,
                  vit_ms, wait_ms);
    s += b;
  }
  std::snprintf(b, sizeof b, " prefill %d tok, %.1f tok/s | decode %d tok, %.1f tok/s", r.n_prompt, r.prefill_tok_s(),
                r.n_decode, r.decode_tok_s());
  s += b;
  std::fprintf(stderr, "%s\n", s.c_str());
}

void print_json_answer(const GenerateResult& r, double load_ms, int n_images, int n_tiles, double vit_ms,
                       double wait_ms, const std::vector<std::string>& image_errors, int prompt_positions) {
  nlohmann::ordered_json j;
  j["text"] = r.text;
  j["tokens"] = r.tokens;
  j["stop_reason"] = stop_reason_name(r.stop_reason);
  if (r.stop_reason == StopReason::StopString) j["stop_string"] = r.stop_string;
  // The whole prompt, image positions included, also those prefilled before the question came.
  j["usage"] = {{"prompt_tokens", prompt_positions >= 0 ? prompt_positions : r.n_prompt},
                {"completion_tokens", int(r.tokens.size())}};
  j["timings"] = {{"load_ms", load_ms},       {"images", n_images},
                  {"tiles", n_tiles},         {"vit_ms", vit_ms},
                  {"encode_wait_ms", wait_ms}, {"prefill_ms", r.prefill_ms},
                  {"prefill_tok_s", r.prefill_tok_s()}, {"decode_ms", r.decode_ms},
                  {"decode_tok_s", r.decode_tok_s()}, {"peak_rss_mib", proc_status_mib("VmHWM")}};
  if (!image_errors.empty()) j["image_errors"] = image_errors;
  // Invalid UTF-8 (a byte-level token cut mid-character) is replaced, never a throw.
  std::fputs(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace edgevlm
