// `edgevlm run`: answers one question about one or more images with a GGUF pair (language model +
// mmproj). stdout carries the answer only (streamed, or one JSON object with --json); timings and
// progress go to stderr.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

void write_trace(const std::string& path, const SessionAnswer& a, const Tokenizer& tok) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  EV_CHECK(f != nullptr, "--trace: cannot open '%s' for writing", path.c_str());
  auto ids = [&](const char* name, const std::vector<int32_t>& v) {
    std::fprintf(f, "\"%s\": [", name);
    for (size_t i = 0; i < v.size(); ++i) std::fprintf(f, "%s%d", i ? "," : "", v[i]);
    std::fprintf(f, "]");
  };
  auto str = [&](const std::string& s) {
    std::fputc('"', f);
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') std::fprintf(f, "\\%c", c);
      else if (c < 0x20) std::fprintf(f, "\\u%04x", c);
      else std::fputc(c, f);
    }
    std::fputc('"', f);
  };
  std::fprintf(f, "{");
  ids("positions", a.positions);
  std::fprintf(f, ", ");
  ids("tokens", a.result.tokens);
  std::fprintf(f, ", \"pieces\": [");
  for (size_t i = 0; i < a.result.tokens.size(); ++i) {
    if (i) std::fputc(',', f);
    str(tok.token_to_piece(a.result.tokens[i]));
  }
  std::fprintf(f, "], \"margins\": [");
  for (size_t i = 0; i < a.result.margins.size(); ++i) std::fprintf(f, "%s%.6g", i ? "," : "", double(a.result.margins[i]));
  std::fprintf(f, "], \"grids\": [");
  for (size_t i = 0; i < a.grids.size(); ++i) std::fprintf(f, "%s[%d,%d]", i ? "," : "", a.grids[i].m, a.grids[i].n);
  std::fprintf(f, "], \"mrope_grids\": [");
  for (size_t i = 0; i < a.mrope_grids.size(); ++i)
    std::fprintf(f, "%s[%d,%d]", i ? "," : "", a.mrope_grids[i].w, a.mrope_grids[i].h);
  std::fprintf(f, "], \"first_top\": [");
  const std::vector<float>& l = a.result.first_logits;
  if (!l.empty()) {
    double mx = l[0];
    for (float x : l) mx = std::max(mx, double(x));
    double sum = 0;
    for (float x : l) sum += std::exp(double(x) - mx);
    std::vector<int32_t> order(l.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
    const size_t k = std::min<size_t>(10, order.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t x, int32_t y) { return l[x] > l[y]; });
    for (size_t i = 0; i < k; ++i) {
      std::fprintf(f, "%s[%d,", i ? "," : "", order[i]);
      str(tok.token_to_piece(order[i]));
      std::fprintf(f, ",%.9g]", double(l[order[i]]) - mx - std::log(sum));
    }
  }
  std::fprintf(f, "], \"n_positions\": %d, \"n_image_positions\": %d}\n", a.n_positions, a.n_image_positions);
  EV_CHECK(std::fclose(f) == 0, "--trace: writing '%s' failed", path.c_str());
}

int run_main(int argc, char** argv) {
  CLI::App app{"Answer a question about images with a GGUF vision-language model pair.\n"
               "Prints the answer to stdout; a timing line (tiles, ViT, prefill, decode) goes to stderr.",
               "edgevlm run"};
  EngineFlags ef;
  AnswerFlags af(128);
  std::string prompt, prompt_file, system_prompt;
  std::vector<std::string> images;
  std::string trace;
  bool print_ids = false, verbose = false, json = false, quiet = false;
  add_engine_options(app, ef, VisionFlags::Required);
  app.add_option("--image", images, "Image file (JPEG, PNG, BMP, GIF, PNM); repeatable, in prompt order");
  app.add_option("-p,--prompt", prompt, "The question. Place images with <image> (one per --image); unplaced images go first");
  app.add_option("--prompt-file", prompt_file, "Read the question from this file");
  add_answer_options(app, af);
  app.add_option("--system", system_prompt, "System message");
  app.add_flag("--print-token-ids", print_ids, "After the answer, print the generated ids as 'ids: 4 5 6'");
  app.add_flag("--json", json, "Print one JSON object (text, tokens, stop reason, usage, timings) instead of streaming");
  app.add_flag("-q,--quiet", quiet, "No timing line and no progress on stderr");
  app.add_flag("-v,--verbose", verbose, "Print model, tiling and prompt details to stderr");
  app.add_option("--trace", trace,
                 "Write a JSON trace to FILE: the prompt's positions (-1 at image positions), each image's grid, "
                 "the generated ids and pieces, and the first step's top-10 log-probabilities (parity tests)");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  EV_CHECK(prompt.empty() + prompt_file.empty() == 1, "give exactly one of -p/--prompt and --prompt-file");
  if (!prompt_file.empty()) prompt = read_text_file(prompt_file);

  auto engine = Engine::load(finish_engine_options(ef, quiet));
  if (engine->chat_template_unknown())
    std::fprintf(stderr, "%s\n", unknown_chat_template_warning(ef.opt.model_path).c_str());
  SessionOptions so;
  so.system_prompt = system_prompt;
  Session session(engine, so);
  for (const std::string& path : images) session.attach_image(path);

  GenerateParams gp = af.params();
  gp.keep_first_logits = gp.keep_first_logits || !trace.empty();
  gp.keep_margins = !trace.empty();
  SessionAnswer a = session.ask(prompt, gp, json ? TextCallback{} : TextCallback{print_piece});
  const GenerateResult& r = a.result;
  for (const std::string& e : a.image_errors) std::fprintf(stderr, "error: %s\n", e.c_str());
  if (!trace.empty()) write_trace(trace, a, engine->tokenizer());
  if (json) {
    print_json_answer(r, engine->load_ms(), a.n_images, a.n_tiles, a.vit_ms, a.wait_ms, a.image_errors, a.n_positions);
  } else {
    if (r.text.empty() || r.text.back() != '\n') std::fputc('\n', stdout);
    if (print_ids) {
      std::fputs("ids:", stdout);
      for (int32_t id : r.tokens) std::fprintf(stdout, " %d", id);
      std::fputc('\n', stdout);
    }
    std::fflush(stdout);
  }
  if (verbose)
    std::fprintf(stderr, "[prompt] %d positions (%d image), chat template %s, %d threads, ctx %d, KV cache %s\n[stop] %s\n",
                 a.n_positions, a.n_image_positions, chat_template_name(engine->chat_template()), engine->pool().size(),
                 session.n_ctx(), kv_type_name(session.kv_type()), stop_reason_name(r.stop_reason));
  if (!quiet) print_timing(r, engine->load_ms(), a.n_images, a.n_tiles, a.vit_ms, a.wait_ms);
  return a.image_errors.empty() ? 0 : 1;
}

}  // namespace

EDGEVLM_COMMAND(run, "run", "Answer a question about images (model + mmproj GGUF pair)", run_main);

}  // namespace edgevlm
