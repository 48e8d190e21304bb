// `edgevlm chat`: an interactive conversation over stdin (a terminal or a script). `/image PATH`
// starts encoding the image at once, in the background, so it is ready (or nearly) by the time
// the question is typed; a plain line is a question, answered with streaming; the KV cache keeps
// the conversation; `/reset` starts a new one; `/quit` (or end of input) leaves.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/session.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

std::string strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

int chat_main(int argc, char** argv) {
  CLI::App app{"Chat about images with a GGUF vision-language model pair. Reads lines from stdin:\n"
               "  /image PATH   attach an image (encoding starts at once, while you type)\n"
               "  /reset        start a new conversation\n"
               "  /quit         leave (so does end of input)\n"
               "  anything else is a question about the images attached so far.",
               "edgevlm chat"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  SessionOptions o;
  o.threads = ThreadPool::hardware_threads();
  int n_predict = 256, chunk = 128;
  SamplerParams sampling;
  bool timing = false;
  app.add_option("-m,--model", o.model_path, "Language model GGUF file")->required();
  app.add_option("--mmproj", o.mmproj_path, "Vision model GGUF file (clip / mmproj)")->required();
  app.add_option("--tiling", o.tiling.strategy, "relaxed | llava-next | internvl | single (default: the model's)");
  app.add_option("--max-tiles", o.tiling.max_tiles, "Most grid tiles per image (default: the model's)")
      ->check(CLI::Range(1, 64));
  app.add_option("-n,--n-predict", n_predict, "Tokens to generate at most per answer")->capture_default_str();
  add_sampling_options(app, sampling);
  app.add_option("-t,--threads", o.threads, "Threads (default: hardware concurrency)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--chunk", chunk, "Prefill chunk size in tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--vit-batch", o.vit_batch, "Tiles per ViT batch")->capture_default_str()->check(CLI::Range(1, 1024));
  bool no_pipeline = false;
  app.add_flag("--no-pipeline", no_pipeline, "Prepare each ViT batch only after the previous one (no overlap)");
  app.add_option("--ctx", o.n_ctx, "KV cache size in tokens (default: the model's context length, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  add_kv_type_option(app, o.kv_type);
  app.add_option("--chat-template", o.chat_template, "chatml | llama3 | none | auto")->capture_default_str();
  app.add_option("--system", o.system_prompt, "System message");
  app.add_flag("--low-memory", o.low_memory,
               "Map the ViT weights only while encoding and drop the LLM's pages meanwhile (lower peak RSS)");
  app.add_flag("--timing", timing, "After each answer, print a [timing] line");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  o.vit_pipeline = !no_pipeline;

  Session s(o);
  GenerateParams gp;
  gp.n_predict = n_predict;
  gp.chunk_size = chunk;
  gp.sampler = sampling;
  const bool tty = isatty(STDIN_FILENO);
  if (tty) std::fprintf(stderr, "edgevlm chat: /image PATH, /reset, /quit; anything else is a question.\n");

  std::string line;
  int status = 0;
  for (;;) {
    if (tty) {
      std::fputs("> ", stderr);
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    const std::string cmd = strip(line);
    if (cmd.empty()) continue;
    if (cmd == "/quit" || cmd == "/exit") break;
    if (cmd == "/reset") {
      s.reset();
      std::fprintf(stderr, "[reset]\n");
      continue;
    }
    if (cmd.rfind("/image", 0) == 0 && (cmd.size() == 6 || cmd[6] == ' ' || cmd[6] == '\t')) {
      const std::string path = strip(cmd.substr(6));
      if (path.empty()) {
        std::fprintf(stderr, "error: /image needs a path\n");
        status = 1;
        continue;
      }
      s.attach_image(path);
      std::fprintf(stderr, "[image] %s: encoding\n", path.c_str());
      continue;
    }
    if (cmd[0] == '/' && cmd.find(' ') == std::string::npos && cmd.size() > 1 && cmd.find('/', 1) == std::string::npos) {
      std::fprintf(stderr, "error: unknown command %s (/image PATH, /reset, /quit)\n", cmd.c_str());
      status = 1;
      continue;
    }
    try {
      SessionAnswer a = s.ask(line, gp, [](std::string_view t) {
        std::fwrite(t.data(), 1, t.size(), stdout);
        std::fflush(stdout);
        return true;
      });
      if (a.result.text.empty() || a.result.text.back() != '\n') std::fputc('\n', stdout);
      if (timing)
        std::fprintf(stdout,
                     "[timing] images %d tiles %d | waited for encode %.1f ms | ViT %.1f ms | prefill %d tok %.1f ms "
                     "| decode %d tok %.1f tok/s | context %d/%d\n",
                     a.n_images, a.n_tiles, a.wait_ms, a.vit_ms, a.result.n_prompt, a.result.prefill_ms,
                     a.result.n_decode, a.result.decode_tok_s(), s.n_past(), s.n_ctx());
      std::fflush(stdout);
    } catch (const Error& e) {
      // A bad image or a full context ends this turn, not the conversation.
      std::fprintf(stderr, "error: %s\n", e.what());
      status = 1;
    }
  }
  return status;
}

}  // namespace

EDGEVLM_COMMAND(chat, "chat", "Interactive chat about images; encodes an image as soon as it is attached",
                chat_main);

}  // namespace edgevlm
