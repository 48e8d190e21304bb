// The decoder's key/value cache: for every layer, the K and V rows (n_head_kv × head_dim each)
// of every position processed so far, up to n_ctx positions. Storage is behind a small
// interface (write rows, read them back as F32 through accessors per storage type), so the
// INT8 cache of the paper can be added as another KvType without touching the forward pass's
// shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/llm.h"

namespace edgevlm {

enum class KvType { F32 };

class KvCache {
 public:
  // Throws edgevlm::Error when n_ctx < 1 or the cache would not fit in memory.
  KvCache(const LlmConfig& c, int n_ctx, KvType type = KvType::F32);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  int n_layer() const { return n_layer_; }
  int kv_dim() const { return kv_dim_; }  // n_head_kv × head_dim floats per position
  KvType type() const { return type_; }
  void clear() { n_past_ = 0; }
  size_t bytes() const;  // memory held by the cache

  // Stores n positions starting at pos (n × kv_dim floats each of K and V) for one layer.
  void write(int layer, int pos, int n, const float* k, const float* v);
  // Marks n more positions as filled (llm_forward calls this after the last layer).
  void advance(int n);
  // Forgets positions from n_past on (keeps a shared prefix, e.g. an image's embeddings).
  void truncate(int n_past);

  // F32 storage: position p of a layer at k_f32(layer) + p · kv_dim. Only for KvType::F32.
  const float* k_f32(int layer) const;
  const float* v_f32(int layer) const;

 private:
  KvType type_;
  int n_ctx_ = 0;
  int n_past_ = 0;
  int n_layer_ = 0;
  int kv_dim_ = 0;
  size_t layer_elems_ = 0;
  std::unique_ptr<float[]> k_;  // n_layer × n_ctx × kv_dim
  std::unique_ptr<float[]> v_;
};

}  // namespace edgevlm
