#include "model/kv_cache.h"

#include <cstring>
#include <new>

#include "core/error.h"

namespace edgevlm {

KvCache::KvCache(const LlmConfig& c, int n_ctx, KvType type) : type_(type) {
  EV_CHECK(n_ctx >= 1, "KV cache: context size must be at least 1, got %d", n_ctx);
  EV_CHECK(c.n_layer >= 1 && c.n_head_kv >= 1 && c.head_dim >= 1, "KV cache: invalid model shape");
  n_ctx_ = n_ctx;
  n_layer_ = c.n_layer;
  kv_dim_ = c.n_head_kv * c.head_dim;
  layer_elems_ = size_t(n_ctx) * size_t(kv_dim_);
  const size_t total = layer_elems_ * size_t(n_layer_);
  EV_CHECK(total < (size_t(1) << 40) / sizeof(float), "KV cache of %zu floats is too large", total);
  // Left uninitialized: pages are touched only as positions are written, so a large context
  // costs memory only as far as it is used.
  k_.reset(new (std::nothrow) float[total]);
  v_.reset(new (std::nothrow) float[total]);
  EV_CHECK(k_ && v_, "KV cache: cannot allocate %zu MiB for %d positions",
           2 * total * sizeof(float) >> 20, n_ctx);
}

KvCache::~KvCache() = default;

size_t KvCache::bytes() const { return 2 * layer_elems_ * size_t(n_layer_) * sizeof(float); }

void KvCache::write(int layer, int pos, int n, const float* k, const float* v) {
  EV_CHECK(layer >= 0 && layer < n_layer_, "KV cache: layer %d out of range", layer);
  EV_CHECK(pos >= 0 && n >= 0 && int64_t(pos) + n <= n_ctx_,
           "KV cache: positions %d..%d exceed the context of %d", pos, pos + n - 1, n_ctx_);
  const size_t off = size_t(layer) * layer_elems_ + size_t(pos) * size_t(kv_dim_);
  std::memcpy(k_.get() + off, k, size_t(n) * size_t(kv_dim_) * sizeof(float));
  std::memcpy(v_.get() + off, v, size_t(n) * size_t(kv_dim_) * sizeof(float));
}

void KvCache::advance(int n) {
  EV_CHECK(n >= 0 && int64_t(n_past_) + n <= n_ctx_, "KV cache: advancing by %d from %d exceeds %d", n,
           n_past_, n_ctx_);
  n_past_ += n;
}

void KvCache::truncate(int n_past) {
  EV_CHECK(n_past >= 0 && n_past <= n_past_, "KV cache: cannot truncate to %d (holds %d)", n_past, n_past_);
  n_past_ = n_past;
}

const float* KvCache::k_f32(int layer) const { return k_.get() + size_t(layer) * layer_elems_; }
const float* KvCache::v_f32(int layer) const { return v_.get() + size_t(layer) * layer_elems_; }

}  // namespace edgevlm
