// Image question speed of llama.cpp's mtmd on a decoder + mmproj pair: image encode seconds, prefill
// seconds, decode tokens/s and peak RSS, the figures edgevlm's `bench --image` reports.
//
//   peer_mtmd_bench --model M.gguf --mmproj P.gguf --image I.png [--threads 2] [--n 32] [--reps 3]
//                   [--question "Describe the image."] [--flash-attn auto|on|off] [--kv f16] [--ctx 8192]
//
// The prompt is the file's chat template applied to one user message, the image before the question
// (llama.cpp's built-in template matcher). Each repetition starts from an empty KV cache:
// encode = mtmd_tokenize (preprocessing and tiling) + mtmd_encode_chunk of every image chunk;
// prefill = the text chunks and the image embeddings into the decoder; decode = --n greedy tokens.
// One warm-up repetition is discarded. Prints one JSON line.
#include <memory>

#include "mtmd-helper.h"
#include "mtmd.h"
#include "peer_common.h"

namespace {

std::string chat_prompt(const llama_model* model, const std::string& question) {
  const std::string content = std::string(mtmd_default_marker()) + "\n" + question;
  llama_chat_message msg{"user", content.c_str()};
  const char* tmpl = llama_model_chat_template(model, nullptr);
  std::vector<char> buf(4096 + content.size() * 2);
  int n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), static_cast<int32_t>(buf.size()));
  if (n < 0 || n > static_cast<int>(buf.size()))
    throw std::runtime_error("llama.cpp has no built-in match for this file's chat template");
  return std::string(buf.data(), n);
}

int run(int argc, char** argv) {
  peer::Flags f(argc, argv, {{"model", ""}, {"mmproj", ""}, {"image", ""}, {"threads", "2"}, {"n", "32"}, {"reps", "3"},
                             {"question", "Describe the image."}, {"flash-attn", "auto"}, {"kv", "f16"},
                             {"ctx", "8192"}, {"batch", "512"}});
  for (const char* k : {"model", "mmproj", "image"})
    if (f.str(k).empty()) throw std::runtime_error(std::string("--") + k + " is required");
  const int threads = f.num("threads"), n_gen = f.num("n"), reps = f.num("reps"), batch = std::max(1, f.num("batch"));
  mtmd_helper_log_set(peer::quiet_log, nullptr);
  auto t_load = std::chrono::steady_clock::now();
  const peer::Loaded l = peer::load(f, f.num("ctx"));
  llama_model* model = l.model;
  llama_context* ctx = l.ctx;
  mtmd_context_params mtp = mtmd_context_params_default();
  mtp.use_gpu = false;
  mtp.print_timings = false;
  mtp.n_threads = threads;
  mtp.flash_attn_type = peer::flash_attn(f.str("flash-attn"));
  mtp.warmup = false;
  mtmd_context* mctx = mtmd_init_from_file(f.str("mmproj").c_str(), model, mtp);
  if (!mctx) throw std::runtime_error("mtmd cannot load " + f.str("mmproj"));
  const double load_s = peer::seconds_since(t_load);

  mtmd_helper_bitmap_wrapper image = mtmd_helper_bitmap_init_from_file(mctx, f.str("image").c_str(), false);
  if (!image.bitmap) throw std::runtime_error("mtmd cannot read " + f.str("image"));
  const std::string prompt = chat_prompt(model, f.str("question"));
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  const int n_embd = llama_model_n_embd_inp(model);

  std::vector<double> encode_s, prefill_s, decode_tps;
  size_t image_tokens = 0, prompt_positions = 0;
  for (int rep = 0; rep <= reps; ++rep) {
    llama_memory_clear(llama_get_memory(ctx), true);
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<mtmd_input_chunks, decltype(&mtmd_input_chunks_free)> chunks(mtmd_input_chunks_init(),
                                                                                 mtmd_input_chunks_free);
    mtmd_input_text text{prompt.c_str(), prompt.size(), true, true};
    const mtmd_bitmap* bitmaps[] = {image.bitmap};
    if (mtmd_tokenize(mctx, chunks.get(), &text, bitmaps, 1) != 0) throw std::runtime_error("mtmd_tokenize failed");
    const size_t n_chunks = mtmd_input_chunks_size(chunks.get());
    std::vector<std::vector<float>> embd(n_chunks);
    image_tokens = 0;
    for (size_t i = 0; i < n_chunks; ++i) {
      const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks.get(), i);
      if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_IMAGE) continue;
      if (mtmd_encode_chunk(mctx, c) != 0) throw std::runtime_error("mtmd_encode_chunk failed");
      const size_t n = mtmd_input_chunk_get_n_tokens(c);
      const float* out = mtmd_get_output_embd(mctx);
      embd[i].assign(out, out + n * n_embd);
      image_tokens += n;
    }
    const double t_encode = peer::seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    llama_pos n_past = 0;
    for (size_t i = 0; i < n_chunks; ++i) {
      const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks.get(), i);
      llama_pos next = n_past;
      int32_t rc = mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_IMAGE
                       ? mtmd_helper_decode_image_chunk(mctx, ctx, c, embd[i].data(), n_past, 0, batch, &next,
                                                        nullptr, nullptr)
                       : mtmd_helper_eval_chunk_single(mctx, ctx, c, n_past, 0, batch, i + 1 == n_chunks, &next);
      if (rc != 0) throw std::runtime_error("prefill of chunk " + std::to_string(i) + " failed");
      n_past = next;
    }
    const double t_prefill = peer::seconds_since(t0);
    prompt_positions = n_past;

    t0 = std::chrono::steady_clock::now();
    llama_token next = peer::argmax(llama_get_logits_ith(ctx, -1), n_vocab);
    for (int i = 0; i < n_gen; ++i) {
      llama_batch b = llama_batch_get_one(&next, 1);
      if (llama_decode(ctx, b) != 0) throw std::runtime_error("decode failed");
      next = peer::argmax(llama_get_logits_ith(ctx, -1), n_vocab);
    }
    const double t_decode = peer::seconds_since(t0);
    if (rep == 0) continue;  // warm-up
    encode_s.push_back(t_encode);
    prefill_s.push_back(t_prefill);
    decode_tps.push_back(n_gen / t_decode);
  }
  std::printf("{%s,\"model\":\"%s\",\"mmproj\":\"%s\",\"image\":\"%s\",\"threads\":%d,\"kv\":\"%s\",\"flash_attn\":\"%s\","
              "\"reps\":%d,\"load_s\":%.3f,\"image_tokens\":%zu,\"prompt_positions\":%zu,\"encode_s\":%.3f,"
              "\"prefill_s\":%.3f,\"decode_tok_s\":%.3f,\"encode_runs\":%s,\"prefill_runs\":%s,\"decode_runs\":%s,"
              "\"peak_rss_mib\":%.1f}\n",
              peer::build_json().c_str(), peer::json_escape(f.str("model")).c_str(),
              peer::json_escape(f.str("mmproj")).c_str(), peer::json_escape(f.str("image")).c_str(), threads,
              f.str("kv").c_str(), f.str("flash-attn").c_str(), reps, load_s, image_tokens, prompt_positions,
              peer::median(encode_s), peer::median(prefill_s), peer::median(decode_tps),
              peer::json_list(encode_s).c_str(), peer::json_list(prefill_s).c_str(),
              peer::json_list(decode_tps).c_str(), peer::peak_rss_mib());
  mtmd_bitmap_free(image.bitmap);
  mtmd_free(mctx);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return peer::guarded_main("peer_mtmd_bench", [&] { return run(argc, argv); });
}
