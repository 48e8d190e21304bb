// `edgevlm generate`: text generation from a GGUF language model, streamed to stdout (or one JSON
// object with --json); the timing line and progress go to stderr.
#include <CLI/CLI.hpp>

#include <bit>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "model/chat_template.h"
#include "model/llm.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

// "1,2,3" or "1 2 3" → ids.
std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> ids;
  std::string cur;
  auto flush = [&]() {
    if (cur.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(cur, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EV_CHECK(used == cur.size() && v >= INT32_MIN && v <= INT32_MAX, "--prompt-tokens: '%s' is not a token id",
             cur.c_str());
    ids.push_back(static_cast<int32_t>(v));
    cur.clear();
  };
  for (char c : s) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n') flush();
    else cur += c;
  }
  flush();
  EV_CHECK(!ids.empty(), "--prompt-tokens: no token ids given");
  return ids;
}

void write_f32_le(const std::string& path, const std::vector<float>& v) {
  std::vector<float> out = v;
  if constexpr (std::endian::native == std::endian::big) {
    for (float& f : out) {
      uint32_t u = std::bit_cast<uint32_t>(f);
      u = __builtin_bswap32(u);
      f = std::bit_cast<float>(u);
    }
  }
  std::ofstream f(path, std::ios::binary);
  EV_CHECK(f.good(), "--dump-logits: cannot open '%s' for writing", path.c_str());
  f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
  EV_CHECK(f.good(), "--dump-logits: writing '%s' failed", path.c_str());
}

int generate_main(int argc, char** argv) {
  CLI::App app{"Generate text with a GGUF language model (" + supported_llm_archs() +
                   "), streaming it to stdout.\nA timing line (load ms, prefill tokens/s, decode tokens/s) goes to stderr.",
               "edgevlm generate"};
  EngineFlags ef;
  AnswerFlags af(128);
  std::string prompt, prompt_file, prompt_tokens, system_prompt, dump_logits;
  bool raw = false, print_ids = false, special = false, verbose = false, json = false,
       quiet = false;
  add_engine_options(app, ef, VisionFlags::None);
  app.add_option("-p,--prompt", prompt, "Prompt text (the user message when a chat template is used)");
  app.add_option("--prompt-file", prompt_file, "Read the prompt text from this file");
  app.add_option("--prompt-tokens", prompt_tokens,
                 "Prompt as raw token ids, e.g. 1,2,3 (no chat template, no BOS added)");
  add_answer_options(app, af);
  app.add_option("--system", system_prompt, "System message (with a chat template)");
  app.add_flag("--raw", raw, "Use the prompt as is, without a chat template");
  app.add_flag("--special", special, "Print the text of special tokens too");
  app.add_flag("--print-token-ids", print_ids, "After the text, print the generated ids as one line 'ids: 4 5 6'");
  app.add_option("--dump-logits", dump_logits,
                 "Write the logits of the first generated position to FILE (raw float32, little-endian)");
  app.add_flag("--json", json, "Print one JSON object (text, tokens, stop reason, usage, timings) instead of streaming");
  app.add_flag("-q,--quiet", quiet, "No timing line and no progress on stderr");
  app.add_flag("-v,--verbose", verbose, "Print model and prompt details to stderr");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  int n_prompt_sources = !prompt.empty() + !prompt_file.empty() + !prompt_tokens.empty();
  EV_CHECK(n_prompt_sources == 1, "give exactly one of -p/--prompt, --prompt-file, --prompt-tokens");
  if (!prompt_file.empty()) prompt = read_text_file(prompt_file);
  const bool templated = prompt_tokens.empty();
  if (raw) ef.opt.chat_template = "none";

  auto engine = Engine::load(finish_engine_options(ef, quiet));
  if (templated && !raw && engine->chat_template_unknown())
    std::fprintf(stderr, "%s\n", unknown_chat_template_warning(ef.opt.model_path).c_str());
  SessionOptions so;
  so.system_prompt = system_prompt;
  Session session(engine, so);

  GenerateParams gp = af.params();
  gp.emit_special = special;
  gp.keep_first_logits = !dump_logits.empty();
  const TextCallback stream = json ? TextCallback{} : TextCallback{print_piece};
  GenerateResult r;
  if (templated) {
    r = session.ask(prompt, gp, stream).result;
  } else {
    r = session.complete(parse_token_list(prompt_tokens), gp, stream);
  }

  if (json) {
    print_json_answer(r, engine->load_ms(), 0, 0, 0, 0);
  } else {
    if (!r.text.empty() && r.text.back() != '\n') std::fputc('\n', stdout);
    if (print_ids) {
      std::fputs("ids:", stdout);
      for (int32_t id : r.tokens) std::fprintf(stdout, " %d", id);
      std::fputc('\n', stdout);
    }
    std::fflush(stdout);
  }
  if (!dump_logits.empty()) write_f32_le(dump_logits, r.first_logits);
  if (verbose) {
    std::fprintf(stderr, "[prompt] %d tokens, chat template %s\n", r.n_prompt,
                 chat_template_name(templated ? engine->chat_template() : ChatTemplate::None));
    const LlmConfig& cfg = engine->llm().config();
    std::fprintf(stderr, "[model] %s: arch %s, %d layers, embd %d, heads %d/%d, vocab %d, ctx %d (train %d), "
                 "KV cache %s, chat template %s, %d threads\n[stop] %s\n",
                 ef.opt.model_path.c_str(), cfg.arch.c_str(), cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_head_kv,
                 cfg.n_vocab, session.n_ctx(), cfg.n_ctx_train, kv_type_name(session.kv_type()),
                 chat_template_name(engine->chat_template()), engine->pool().size(), stop_reason_name(r.stop_reason));
    if (const LoraWeights* lw = engine->llm().lora())
      std::fprintf(stderr, "[lora] %zu adapter(s): %d matrices merged at load, %d adapted on the fly\n",
                   ef.opt.loras.size(), lw->n_merged(), lw->n_on_the_fly());
  }
  if (!quiet) print_timing(r, engine->load_ms(), 0, 0, 0, 0);
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(generate, "generate", "Generate text from a prompt with a GGUF language model", generate_main);

}  // namespace edgevlm
