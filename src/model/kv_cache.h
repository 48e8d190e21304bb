// The decoder's key/value cache: for every layer, the K and V rows (n_head_kv × head_dim each)
// of every position processed so far, up to n_ctx positions.
//
// Storage types (the paper keeps the KV cache in INT8):
//   Q8   int8 elements with one F16 scale per (position, KV head) — see ops/attention.h for the
//        format and why one scale per head row: 0.51× the bytes of F16 at head size 80;
//   F16  half precision;
//   F32  exact (reference tests).
// LFM2's convolution layers keep no K/V rows but a short state (their last conv_kernel − 1
// inputs), held here too so that a sequence's whole state travels in one object.
// The forward pass does not depend on the type: it writes F32 rows (quantized here) and hands
// the attention kernel a view of a layer (attention_view), which reads any of the three.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/llm.h"
#include "ops/attention.h"

namespace edgevlm {

enum class KvType { F32, F16, Q8 };
// What the engine uses unless told otherwise (the CLI's --kv-type default).
constexpr KvType kDefaultKvType = KvType::Q8;
const char* kv_type_name(KvType t);  // "f32", "f16", "q8"
// Parses "q8" (also "q8_0", "int8"), "f16", "f32"; throws edgevlm::Error naming the value.
KvType parse_kv_type(const std::string& s);

class KvCache {
 public:
  // Throws edgevlm::Error when n_ctx < 1 or the cache would not fit in memory.
  // The constructor's default stays F32 (exact); the engine's default is kDefaultKvType.
  KvCache(const LlmConfig& c, int n_ctx, KvType type = KvType::F32);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  int n_layer() const { return n_layer_; }
  int kv_dim() const { return kv_dim_; }  // n_head_kv × head_dim elements per position
  int n_head_kv() const { return n_head_kv_; }
  int head_dim() const { return head_dim_; }
  KvType type() const { return type_; }
  void clear();  // forgets every position (and zeroes LFM2's convolution state)
  size_t bytes() const;  // memory held by the cache (elements and scales, K and V of the attention
                         // layers; convolution state)
  // Bytes one position occupies across all layers (K and V): bytes() / n_ctx().
  size_t bytes_per_position() const;

  // Stores n positions starting at pos (n × kv_dim floats each of K and V) for one layer,
  // converted to the cache's type.
  void write(int layer, int pos, int n, const float* k, const float* v);
  // Marks n more positions as filled (llm_forward calls this after the last layer).
  void advance(int n);
  // Forgets positions from n_past on (keeps a shared prefix, e.g. an image's embeddings). A model
  // with convolution layers cannot go back (their state holds no history): throws unless n_past
  // is the current length or 0 (a fresh sequence).
  void truncate(int n_past);

  // A point to come back to, for any model: the length and the convolution state (small: a few
  // rows per convolution layer). Positions written after it are simply overwritten later.
  struct Checkpoint {
    int n_past = 0;
    std::vector<float> conv;
  };
  Checkpoint checkpoint() const { return {n_past_, conv_}; }
  // Goes back to a checkpoint of this cache taken at n_past() or earlier (e.g. a turn that failed
  // or was cancelled during its prefill).
  void restore(const Checkpoint& c);

  // M-RoPE decoders (LlmConfig::mrope): an image's grid of tokens advances the RoPE position by its
  // longer side, not by its length (llama.cpp's mtmd), so the position that follows each slot is
  // kept per slot and survives truncate/restore. next_position(): the position of the next text
  // token; position_after(p): of the token after slot p < n_past().
  int next_position() const { return n_past_ == 0 ? 0 : next_pos_[size_t(n_past_ - 1)]; }
  int position_after(int slot) const;
  // Records the position after slot (llm_forward, for the slots it writes).
  void set_position_after(int slot, int pos);

  // LFM2 convolution layer's state: (conv_kernel − 1) × n_embd floats. Throws for other layers.
  float* conv_state(int layer);

  // Points a's K/V fields (k, v or k_raw, v_raw, scales, kv_stride, kv_type) at one layer.
  void attention_view(int layer, AttentionArgs& a) const;
  // Reads position pos of a layer back as F32 (kv_dim floats each; either pointer may be null).
  void read(int layer, int pos, float* k, float* v) const;

  // F32 storage: position p of a layer at k_f32(layer) + p · kv_dim. Throws unless KvType::F32.
  const float* k_f32(int layer) const;
  const float* v_f32(int layer) const;

 private:
  size_t elem_bytes() const;
  void check_layer(int layer) const;
  size_t kv_slot(int layer) const;  // where an attention layer's K/V rows are; throws for others

  KvType type_;
  int n_ctx_ = 0;
  int n_past_ = 0;
  int n_layer_ = 0;
  int n_head_kv_ = 0;
  int head_dim_ = 0;
  int kv_dim_ = 0;
  size_t layer_elems_ = 0;   // n_ctx × kv_dim
  size_t layer_scales_ = 0;  // n_ctx × n_head_kv (Q8)
  std::unique_ptr<uint8_t[]> k_, v_;  // n_layer × n_ctx × kv_dim elements
  std::unique_ptr<uint16_t[]> k_scale_, v_scale_;  // Q8: n_layer × n_ctx × n_head_kv F16 scales
  std::vector<int> slot_;            // per layer: its K/V slot, −1 for a convolution layer
  int n_kv_layers_ = 0;
  std::vector<uint8_t> conv_layer_;  // which layers are convolutions
  size_t conv_elems_ = 0;            // per convolution layer
  std::vector<float> conv_;          // n_layer × conv_elems_ (zero-sized without convolutions)
  std::vector<int32_t> next_pos_;    // M-RoPE decoders: n_ctx positions (empty otherwise)
};

}  // namespace edgevlm
