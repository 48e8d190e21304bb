// Text prefill and decode speed of llama.cpp on a GGUF file: the native twin of bench/peer/bench.mjs,
// with the same flags and JSON keys, plus --flash-attn and --depth.
//
//   peer_bench --model M.gguf [--threads 2] [--prompt 512] [--n 64] [--reps 3] [--kv f16]
//              [--flash-attn auto|on|off] [--depth 0] [--seed 1] [--batch 512]
//
// Each repetition starts from an empty KV cache, first fills --depth positions (not timed), then
// prefill = --prompt token ids in batches of --batch, decode = --n single-token passes, each fed the
// greedy choice of the one before. Token ids are random (the same xorshift as bench.mjs), so no
// tokenizer is involved. One warm-up repetition is discarded. Prints one JSON line.
#include "peer_common.h"

namespace {

std::vector<llama_token> prompt_tokens(int n, int n_vocab, int seed) {
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u;
  if (!x) x = 1;
  std::vector<llama_token> out;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    out.push_back(static_cast<llama_token>(x % static_cast<uint32_t>(std::max(1, n_vocab - 256))));
  }
  return out;
}

// Evaluates tokens at positions pos.. in batches; returns the logits of the last one.
const float* eval(llama_context* ctx, const std::vector<llama_token>& toks, int pos, int batch) {
  llama_batch b = llama_batch_init(batch, 0, 1);
  for (size_t at = 0; at < toks.size(); at += batch) {
    b.n_tokens = 0;
    for (size_t i = at; i < std::min(toks.size(), at + batch); ++i) {
      b.token[b.n_tokens] = toks[i];
      b.pos[b.n_tokens] = pos + static_cast<int>(i);
      b.n_seq_id[b.n_tokens] = 1;
      b.seq_id[b.n_tokens][0] = 0;
      b.logits[b.n_tokens] = i + 1 == toks.size();
      ++b.n_tokens;
    }
    if (llama_decode(ctx, b) != 0) {
      llama_batch_free(b);
      throw std::runtime_error("llama_decode failed");
    }
  }
  llama_batch_free(b);
  return llama_get_logits_ith(ctx, -1);
}

int run(int argc, char** argv) {
  peer::Flags f(argc, argv, {{"model", ""}, {"threads", "2"}, {"prompt", "512"}, {"n", "64"}, {"reps", "3"},
                             {"kv", "f16"}, {"flash-attn", "auto"}, {"depth", "0"}, {"seed", "1"}, {"batch", "512"}});
  if (f.str("model").empty()) throw std::runtime_error("--model is required");
  const int threads = f.num("threads"), n_prompt = f.num("prompt"), n_gen = f.num("n"), reps = f.num("reps"),
            depth = f.num("depth"), batch = std::max(1, f.num("batch"));
  auto t_load = std::chrono::steady_clock::now();
  const peer::Loaded l = peer::load(f, depth + n_prompt + n_gen + 16);
  llama_model* model = l.model;
  llama_context* ctx = l.ctx;
  const double load_s = peer::seconds_since(t_load);

  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  const auto toks = prompt_tokens(n_prompt, n_vocab, f.num("seed"));
  const auto fill = prompt_tokens(depth, n_vocab, f.num("seed") + 1);
  std::vector<double> prefill, decode;
  for (int rep = 0; rep <= reps; ++rep) {
    llama_memory_clear(llama_get_memory(ctx), true);
    if (depth) eval(ctx, fill, 0, batch);
    auto t0 = std::chrono::steady_clock::now();
    const float* logits = eval(ctx, toks, depth, batch);
    const double t_prefill = peer::seconds_since(t0);
    llama_token next = peer::argmax(logits, n_vocab);
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_gen; ++i) next = peer::argmax(eval(ctx, {next}, depth + n_prompt + i, 1), n_vocab);
    const double t_decode = peer::seconds_since(t0);
    if (rep == 0) continue;  // warm-up
    prefill.push_back(n_prompt / t_prefill);
    decode.push_back(n_gen / t_decode);
  }
  std::printf("{%s,\"model\":\"%s\",\"threads\":%d,\"kv\":\"%s\",\"flash_attn\":\"%s\",\"depth\":%d,"
              "\"prompt_tokens\":%d,\"decode_tokens\":%d,\"reps\":%d,\"load_s\":%.3f,\"prefill_tok_s\":%.3f,"
              "\"decode_tok_s\":%.3f,\"prefill_runs\":%s,\"decode_runs\":%s,\"peak_rss_mib\":%.1f}\n",
              peer::build_json().c_str(), peer::json_escape(f.str("model")).c_str(), threads, f.str("kv").c_str(),
              f.str("flash-attn").c_str(), depth, n_prompt, n_gen, reps, load_s, peer::median(prefill),
              peer::median(decode), peer::json_list(prefill).c_str(), peer::json_list(decode).c_str(),
              peer::peak_rss_mib());
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return peer::guarded_main("peer_bench", [&] { return run(argc, argv); });
}
