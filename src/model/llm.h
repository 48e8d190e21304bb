// The LLaMA-family decoder (architectures `llama` and `qwen2`) read from a GGUF file:
// token embeddings → n_layer × [RMSNorm, Q/K/V (+bias), RoPE, causal GQA, output projection,
// residual; RMSNorm, SwiGLU feed-forward, residual] → RMSNorm → output matrix → logits.
// Weights are views into the GGUF mapping, not copies (1-D norms stored in a type other than
// F32 are converted once).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace edgevlm {

struct LlmConfig {
  std::string arch;  // "llama" or "qwen2"
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0,
      n_ctx_train = 0;
  float rms_eps = 1e-5f, rope_freq_base = 10000.0f;
  RopeType rope_type = RopeType::Normal;  // llama: Normal, qwen2: NeoX (as llama.cpp)
  bool qkv_bias = false;
  bool tied_output = false;  // output.weight absent: logits use token_embd.weight
  int n_rot = 0;             // rotated dimensions per head ({arch}.rope.dimension_count, default head_dim)

  // Reads the hyperparameters from the standard keys; throws edgevlm::Error naming the key
  // when one is missing or out of range. n_vocab comes from token_embd.weight.
  static LlmConfig from_gguf(const GGUFFile& f);
};

struct LlmLayer {
  const float* attn_norm = nullptr;
  WeightMatrix wq, wk, wv, wo;
  const float* bq = nullptr;  // null when the model has no QKV bias
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;
  WeightMatrix w_gate, w_up, w_down;
};

class LlmModel {
 public:
  // Validates every tensor's shape and type against the config; errors name the tensor.
  // Keeps a reference to f, which must outlive the model. With a pool, every matrix is also
  // prepared for the kernels now (matmul_prepare, on the pool): the one-time repack happens here
  // instead of in the first prefill, and each repacked copy replaces the file pages it was made
  // from. Without one (e.g. while another model should have the memory), on first use.
  static std::unique_ptr<LlmModel> load(const GGUFFile& f, ThreadPool* pool = nullptr);
  ~LlmModel();  // frees the repacked copies of its matrices
  LlmModel(const LlmModel&) = delete;
  LlmModel& operator=(const LlmModel&) = delete;

  const LlmConfig& config() const { return cfg_; }
  const GGUFFile& file() const { return *file_; }
  // out: n × n_embd floats. Throws edgevlm::Error on a token id outside [0, n_vocab).
  void embed_tokens(const int32_t* tokens, int n, float* out) const;

  const std::vector<LlmLayer>& layers() const { return layers_; }
  const WeightMatrix& token_embd() const { return token_embd_; }
  const WeightMatrix& output() const { return output_; }  // = token_embd when tied
  const float* output_norm() const { return output_norm_; }
  // Bytes of weights one decode step reads (all matrices except the embedding table unless tied).
  size_t weight_bytes_per_token() const;

 private:
  LlmModel() = default;
  const float* vector_f32(const std::string& name, int64_t n);
  std::vector<const WeightMatrix*> matrices() const;  // every matrix once (output = token_embd when tied)

  const GGUFFile* file_ = nullptr;
  LlmConfig cfg_;
  WeightMatrix token_embd_, output_;
  const float* output_norm_ = nullptr;
  bool release_embd_rows_ = false;  // the table's file pages are given back after each lookup
  std::vector<LlmLayer> layers_;
  std::vector<std::vector<float>> owned_;  // 1-D tensors converted to F32
};

class KvCache;

// Decoder forward over n new positions (embeddings n × n_embd) appended at cache.n_past();
// advances the cache. logits: n_vocab floats for the last position, or n × n_vocab when
// all_logits; logits may be null when only the cache matters (earlier prefill chunks). Throws edgevlm::Error when the positions do not fit in the cache.
void llm_forward(const LlmModel& m, KvCache& cache, const float* embeddings, int n, float* logits,
                 bool all_logits, ThreadPool& pool);

}  // namespace edgevlm
