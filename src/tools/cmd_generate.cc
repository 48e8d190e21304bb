// `edgevlm generate`: text generation from a GGUF language model, streamed to stdout, ending with
// one timing line.
#include <CLI/CLI.hpp>

#include <bit>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/generate.h"
#include "formats/gguf.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

constexpr int kDefaultMaxCtx = 4096;

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

// --stop '\n\n' should stop at a blank line, as a shell cannot easily pass a raw newline.
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
  return ss.str();
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
                   "), streaming it to stdout.\nEnds with a timing line: load ms, prefill tokens/s, decode tokens/s.",
               "edgevlm generate"};
  app.set_help_flag("-h,--help", "Print this help and exit");

  std::string model_path, prompt, prompt_file, prompt_tokens, system_prompt, dump_logits;
  std::string chat_template = "auto";
  std::vector<std::string> stop;
  int n_predict = 128, chunk = 128, ctx = 0;
  int threads = ThreadPool::hardware_threads();
  SamplerParams sampling;
  bool raw = false, print_ids = false, ignore_eos = false, special = false, verbose = false;
  KvType kv_type = kDefaultKvType;

  app.add_option("-m,--model", model_path, "Language model GGUF file")->required();
  app.add_option("-p,--prompt", prompt, "Prompt text (the user message when a chat template is used)");
  app.add_option("--prompt-file", prompt_file, "Read the prompt text from this file");
  app.add_option("--prompt-tokens", prompt_tokens,
                 "Prompt as raw token ids, e.g. 1,2,3 (no chat template, no BOS added)");
  app.add_option("-n,--n-predict", n_predict, "Tokens to generate at most; -1 = until the context is full")
      ->capture_default_str();
  add_sampling_options(app, sampling);
  app.add_option("--chunk", chunk, "Prefill chunk size in tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", threads, "Threads (default: hardware concurrency)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--ctx", ctx, "KV cache size in tokens (default: the model's context length, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  add_kv_type_option(app, kv_type);
  app.add_option("--chat-template", chat_template,
                 "chatml | llama3 | gemma | phi3 | lfm2 | smolvlm | none | auto (auto: recognised from the model's "
                 "tokenizer.chat_template)")
      ->capture_default_str();
  app.add_option("--system", system_prompt, "System message (with a chat template)");
  app.add_option("--stop", stop, "Stop when this text appears (not printed); repeatable; \\n and \\t are escapes")
      ->allow_extra_args(false);  // --stop A B is an error, not two stop strings
  app.add_flag("--raw", raw, "Use the prompt as is, without a chat template");
  app.add_flag("--ignore-eos", ignore_eos, "Keep generating past end-of-generation tokens");
  app.add_flag("--special", special, "Print the text of special tokens too");
  app.add_flag("--print-token-ids", print_ids, "After the text, print the generated ids as one line 'ids: 4 5 6'");
  app.add_option("--dump-logits", dump_logits,
                 "Write the logits of the first generated position to FILE (raw float32, little-endian)");
  app.add_flag("-v,--verbose", verbose, "Print model and prompt details to stderr");

  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  int n_prompt_sources = !prompt.empty() + !prompt_file.empty() + !prompt_tokens.empty();
  EV_CHECK(n_prompt_sources == 1, "give exactly one of -p/--prompt, --prompt-file, --prompt-tokens");
  if (!prompt_file.empty()) prompt = read_text_file(prompt_file);

  Timer load_timer;
  ThreadPool pool(threads);
  auto gguf = GGUFFile::open(model_path);
  auto model = LlmModel::load(*gguf, &pool);
  auto tokenizer = Tokenizer::from_gguf(*gguf);
  const LlmConfig& cfg = model->config();
  EV_CHECK(tokenizer->n_vocab() <= cfg.n_vocab, "%s: tokenizer has %d tokens but the model's vocabulary is %d",
           model_path.c_str(), tokenizer->n_vocab(), cfg.n_vocab);
  int n_ctx = ctx > 0 ? ctx : std::min(cfg.n_ctx_train > 0 ? cfg.n_ctx_train : kDefaultMaxCtx, kDefaultMaxCtx);
  KvCache cache(cfg, n_ctx, kv_type);
  const double load_ms = load_timer.elapsed_ms();

  // Prompt → ids.
  std::vector<int32_t> ids;
  ChatTemplate tmpl = ChatTemplate::None;
  if (!prompt_tokens.empty()) {
    ids = parse_token_list(prompt_tokens);
  } else {
    bool unknown = false;
    tmpl = raw ? ChatTemplate::None : chat_template_for(chat_template, *gguf, &unknown);
    if (unknown) std::fprintf(stderr, "%s\n", unknown_chat_template_warning(model_path).c_str());
    std::vector<ChatMessage> msgs;
    if (!system_prompt.empty()) msgs.push_back({"system", system_prompt});
    msgs.push_back({"user", prompt});
    const std::string text = apply_chat_template(tmpl, msgs, true);
    ids = tokenizer->encode(text, false, true);
    // Templates such as Llama-3 spell out the BOS themselves; never add a second one.
    const int32_t bos = tokenizer->bos_id();
    if (tokenizer->add_bos_default() && bos >= 0 && (ids.empty() || ids[0] != bos)) ids.insert(ids.begin(), bos);
  }
  EV_CHECK(!ids.empty(), "the prompt encodes to no tokens");

  if (verbose) {
    std::fprintf(stderr, "[model] %s: arch %s, %d layers, embd %d, heads %d/%d, vocab %d, ctx %d (train %d), "
                 "KV cache %s\n",
                 model_path.c_str(), cfg.arch.c_str(), cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_head_kv,
                 cfg.n_vocab, n_ctx, cfg.n_ctx_train, kv_type_name(kv_type));
    std::fprintf(stderr, "[prompt] %zu tokens, chat template %s, %d threads\n", ids.size(),
                 chat_template_name(tmpl), pool.size());
  }

  GenerateParams gp;
  gp.n_predict = n_predict;
  gp.chunk_size = chunk;
  gp.sampler = sampling;
  for (auto& s : stop) gp.stop_strings.push_back(unescape(s));
  for (auto& s : chat_template_stop_strings(tmpl)) gp.stop_strings.push_back(s);
  gp.stop_at_eog = !ignore_eos;
  gp.emit_special = special;
  gp.keep_first_logits = !dump_logits.empty();

  Generator gen(*model, *tokenizer, cache, pool);
  GenerateResult r = gen.generate(ids, gp, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });

  if (!r.text.empty() && r.text.back() != '\n') std::fputc('\n', stdout);
  if (!dump_logits.empty()) write_f32_le(dump_logits, r.first_logits);
  if (print_ids) {
    std::fputs("ids:", stdout);
    for (int32_t id : r.tokens) std::fprintf(stdout, " %d", id);
    std::fputc('\n', stdout);
  }
  if (verbose) std::fprintf(stderr, "[stop] %s\n", stop_reason_name(r.stop_reason));
  std::fprintf(stdout, "[timing] load %.1f ms | prefill %d tok, %.1f tok/s | decode %d tok, %.1f tok/s\n", load_ms,
               r.n_prompt, r.prefill_tok_s(), r.n_decode, r.decode_tok_s());
  std::fflush(stdout);
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(generate, "generate", "Generate text from a prompt with a GGUF language model", generate_main);

}  // namespace edgevlm
