// The decoder of the LLaMA family and its relatives read from a GGUF file (architectures llama,
// qwen2, qwen3, gemma3, phi3, lfm2; src/model/llm_arch.cc holds what differs between them):
// token embeddings → n_layer × [RMSNorm, Q/K/V (+bias), (per-head q/k RMSNorm), RoPE, causal GQA
// (optionally over a sliding window), output projection, (post-norm), residual; RMSNorm, gated
// feed-forward (SiLU or GELU), (post-norm), residual] → RMSNorm → output matrix → logits.
// LFM2 replaces the attention of most layers by a gated short convolution (its state is kept in
// the KvCache, beside the K/V rows).
// Weights are views into the GGUF mapping, not copies (1-D norms stored in a type other than
// F32 are converted once; F32 matrices that a LoRA adapter is merged into, model/lora.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "model/lora.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace edgevlm {

// The gated feed-forward's activation: act(W_gate·x) ⊙ W_up·x.
enum class FfnAct { SiLU, GeluTanh };

struct LlmConfig {
  std::string arch;  // general.architecture: one of supported_llm_archs()
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0,
      n_ctx_train = 0;
  float rms_eps = 1e-5f, rope_freq_base = 10000.0f;
  RopeType rope_type = RopeType::Normal;  // per architecture, as llama.cpp's llama_model_rope_type()
  bool qkv_bias = false;
  bool tied_output = false;  // output.weight absent: logits use token_embd.weight
  int n_rot = 0;             // rotated dimensions per head ({arch}.rope.dimension_count, default head_dim)
  // M-RoPE (qwen2vl: Qwen2-VL, Qwen2.5-VL): the rotation pairs split into sections that rotate by
  // a position's t, h and w coordinates ({arch}.rope.dimension_sections); an image's tokens take
  // 2-D coordinates (PositionSpan::grid_w/grid_h), text tokens the same value in all three.
  bool mrope = false;
  RopeSections rope_sections;

  // What differs between the families (llm_arch.cc sets these from the architecture and its keys).
  bool qk_norm = false;        // blk.N.attn_q_norm/attn_k_norm: RMSNorm over each head before RoPE
  bool post_norms = false;     // blk.N.post_attention_norm/post_ffw_norm on each sub-block's output
  bool fused_qkv = false;      // blk.N.attn_qkv: the Q, K and V rows stacked in one matrix
  bool fused_gate_up = false;  // blk.N.ffn_up: 2·n_ff rows, the gate's then the up projection's
  FfnAct ffn_act = FfnAct::SiLU;
  float embd_scale = 1.0f;     // token embeddings are multiplied by this (gemma3: √n_embd)
  float attn_scale = 0.0f;     // q·k scale before the softmax
  float logit_softcap = 0.0f;  // > 0: logits = c·tanh(logits / c)
  float rope_freq_scale = 1.0f;   // 1 / {arch}.rope.scaling.factor (linear scaling)
  float rope_attn_factor = 1.0f;  // {arch}.rope.scaling.attn_factor
  int n_ctx_orig = 0;  // {arch}.rope.scaling.original_context_length: LongRoPE's short/long switch
  // Sliding-window attention: layers with swa_layer[l] see only the last n_swa positions and
  // rotate with rope_freq_base_swa and no frequency scaling (gemma3's local layers).
  int n_swa = 0;
  std::vector<uint8_t> swa_layer;  // n_layer flags (all 0 without a window)
  float rope_freq_base_swa = 10000.0f;

  // LFM2: layers whose attention.head_count_kv entry is 0 are gated short convolutions of
  // conv_kernel taps ({arch}.shortconv.l_cache) instead of attention.
  std::vector<uint8_t> conv_layer;  // n_layer flags (all 0 but for lfm2)
  int conv_kernel = 0;
  std::string output_norm_name = "output_norm.weight";  // lfm2: token_embd_norm.weight

  bool is_swa(int layer) const { return n_swa > 0 && swa_layer[size_t(layer)] != 0; }
  bool is_conv(int layer) const { return conv_kernel > 0 && conv_layer[size_t(layer)] != 0; }

  // Reads the hyperparameters from the standard keys; throws edgevlm::Error naming the key
  // when one is missing or out of range, and naming the architecture (and listing the supported
  // ones) when it is not supported. n_vocab comes from token_embd.weight.
  static LlmConfig from_gguf(const GGUFFile& f);
};

// The architectures LlmModel runs, for messages: "llama, qwen2, ...".
std::string supported_llm_archs();

struct LlmLayer {
  const float* attn_norm = nullptr;
  WeightMatrix wq, wk, wv, wo;  // views into attn_qkv when the file fuses them
  const float* bq = nullptr;  // null when the model has no QKV bias
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;  // head_dim weights (qk_norm), else null
  const float* k_norm = nullptr;
  const float* attn_post_norm = nullptr;  // n_embd weights (post_norms), else null
  const float* ffn_norm = nullptr;
  WeightMatrix w_gate, w_up, w_down;  // gate/up are views into ffn_up when the file fuses them
  const float* ffn_post_norm = nullptr;
  // LFM2 convolution layers (no attention tensors): in_proj gives B, C, x (n_embd each);
  // out_proj · (C ⊙ conv(B ⊙ x)).
  WeightMatrix conv_in, conv_out;
  const float* conv_w = nullptr;  // n_embd × conv_kernel taps
};

class LlmModel {
 public:
  // Validates every tensor's shape and type against the config; errors name the tensor.
  // Keeps a reference to f, which must outlive the model. With a pool, every matrix is also
  // prepared for the kernels now (matmul_prepare, on the pool): the one-time repack happens here
  // instead of in the first prefill, and each repacked copy replaces the file pages it was made
  // from. Without one (e.g. while another model should have the memory), on first use.
  // adapters: LoRA adapters applied to the matrices (model/lora.h; merged or on the fly as mode
  // says); they may be closed once load returns.
  static std::unique_ptr<LlmModel> load(const GGUFFile& f, ThreadPool* pool = nullptr,
                                        const std::vector<const LoraAdapter*>& adapters = {},
                                        LoraMode mode = LoraMode::Auto);
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
  // Per-dimension RoPE frequency divisors (n_rot/2 floats) for a cache of n_ctx positions, or null:
  // rope_freqs.weight (Llama 3), else LongRoPE's rope_factors_long.weight beyond the original
  // context and rope_factors_short.weight within it (as llama.cpp chooses by context size).
  const float* rope_factors(int n_ctx) const;
  // Bytes of weights one decode step reads (all matrices except the embedding table unless tied).
  size_t weight_bytes_per_token() const;
  // The LoRA adapters applied at load, or null without any.
  const LoraWeights* lora() const { return lora_.get(); }

 private:
  LlmModel() = default;
  const float* vector_f32(const std::string& name, int64_t n);
  // A small tensor of these dimensions as F32 (converted once when stored otherwise).
  const float* dense_f32(const std::string& name, const std::vector<int64_t>& ne);
  std::vector<const WeightMatrix*> matrices() const;  // every matrix once (output = token_embd when tied)

  const GGUFFile* file_ = nullptr;
  LlmConfig cfg_;
  WeightMatrix token_embd_, output_;
  const float* output_norm_ = nullptr;
  const float* rope_freqs_ = nullptr;
  const float* rope_long_ = nullptr;
  const float* rope_short_ = nullptr;
  bool release_embd_rows_ = false;  // the table's file pages are given back after each lookup
  std::vector<LlmLayer> layers_;
  std::vector<std::vector<float>> owned_;  // 1-D tensors converted to F32
  std::unique_ptr<LoraWeights> lora_;
};

class KvCache;

// A run of image positions that the decoder reads in its own way.
struct PositionSpan {
  int begin = 0, end = 0;      // positions [begin, end): absolute in llm_forward, relative to the prompt elsewhere
  bool bidirectional = false;  // they attend to each other both ways (a Gemma 3 image: llama.cpp
                               // decodes it with non-causal attention)
  int grid_w = 0, grid_h = 0;  // > 0: a grid_h × grid_w raster of image tokens with 2-D M-RoPE
                               // coordinates (Qwen2-VL; ignored by decoders without M-RoPE)
  bool empty() const { return begin >= end; }
};

// Decoder forward over n new positions (embeddings n × n_embd) appended at cache.n_past();
// advances the cache. logits: n_vocab floats for the last position, or n × n_vocab when
// all_logits; logits may be null when only the cache matters (earlier prefill chunks). Throws
// edgevlm::Error when the positions do not fit in the cache.
// spans: image runs among (or, for an M-RoPE grid cut by a prefill chunk, around) the new
// positions; at most one bidirectional, and it must lie within the new positions.
void llm_forward(const LlmModel& m, KvCache& cache, const float* embeddings, int n, float* logits,
                 bool all_logits, ThreadPool& pool, const std::vector<PositionSpan>& spans = {});

}  // namespace edgevlm
