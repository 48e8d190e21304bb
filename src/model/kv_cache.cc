#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"
#include "formats/quant.h"

namespace edgevlm {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::Q8: return "q8";
  }
  return "?";
}

KvType parse_kv_type(const std::string& s) {
  if (s == "q8" || s == "q8_0" || s == "int8") return KvType::Q8;
  if (s == "f16") return KvType::F16;
  if (s == "f32") return KvType::F32;
  fail("unknown KV cache type '%s' (q8, f16 or f32)", s.c_str());
}

KvCache::KvCache(const LlmConfig& c, int n_ctx, KvType type) : type_(type) {
  EV_CHECK(n_ctx >= 1, "KV cache: context size must be at least 1, got %d", n_ctx);
  EV_CHECK(c.n_layer >= 1 && c.n_head_kv >= 1 && c.head_dim >= 1, "KV cache: invalid model shape");
  EV_CHECK(type == KvType::F32 || type == KvType::F16 || type == KvType::Q8, "KV cache: unknown type %d",
           int(type));
  n_ctx_ = n_ctx;
  n_layer_ = c.n_layer;
  n_head_kv_ = c.n_head_kv;
  head_dim_ = c.head_dim;
  kv_dim_ = c.n_head_kv * c.head_dim;
  layer_elems_ = size_t(n_ctx) * size_t(kv_dim_);
  layer_scales_ = type == KvType::Q8 ? size_t(n_ctx) * size_t(n_head_kv_) : 0;
  // K/V rows for the attention layers only (LFM2's convolution layers keep none).
  slot_.assign(size_t(n_layer_), -1);
  for (int l = 0; l < n_layer_; ++l)
    if (!c.is_conv(l)) slot_[size_t(l)] = n_kv_layers_++;
  const size_t total = layer_elems_ * size_t(n_kv_layers_);
  EV_CHECK(total < (size_t(1) << 40) / sizeof(float), "KV cache of %zu elements is too large", total);
  // Left uninitialized: pages are touched only as positions are written, so a large context
  // costs memory only as far as it is used.
  k_.reset(new (std::nothrow) uint8_t[total * elem_bytes()]);
  v_.reset(new (std::nothrow) uint8_t[total * elem_bytes()]);
  bool ok = k_ && v_;
  if (ok && layer_scales_ > 0) {
    k_scale_.reset(new (std::nothrow) uint16_t[layer_scales_ * size_t(n_kv_layers_)]);
    v_scale_.reset(new (std::nothrow) uint16_t[layer_scales_ * size_t(n_kv_layers_)]);
    ok = k_scale_ && v_scale_;
  }
  EV_CHECK(ok, "KV cache: cannot allocate %zu MiB for %d positions", bytes() >> 20, n_ctx);
  if (c.mrope) next_pos_.assign(size_t(n_ctx), 0);
  if (c.conv_kernel > 0) {
    conv_layer_ = c.conv_layer;
    conv_elems_ = size_t(c.conv_kernel - 1) * size_t(c.n_embd);
    conv_.assign(conv_elems_ * size_t(n_layer_), 0.0f);
  }
}

void KvCache::clear() {
  n_past_ = 0;
  std::fill(conv_.begin(), conv_.end(), 0.0f);
}

float* KvCache::conv_state(int layer) {
  check_layer(layer);
  EV_CHECK(!conv_layer_.empty() && conv_layer_[size_t(layer)], "KV cache: layer %d has no convolution state", layer);
  return conv_.data() + size_t(layer) * conv_elems_;
}

KvCache::~KvCache() = default;

size_t KvCache::elem_bytes() const {
  switch (type_) {
    case KvType::F32: return 4;
    case KvType::F16: return 2;
    case KvType::Q8: return 1;
  }
  return 4;
}

size_t KvCache::bytes() const {
  return 2 * size_t(n_kv_layers_) * (layer_elems_ * elem_bytes() + layer_scales_ * sizeof(uint16_t)) +
         conv_.size() * sizeof(float) + next_pos_.size() * sizeof(int32_t);
}

size_t KvCache::bytes_per_position() const { return bytes() / size_t(n_ctx_); }

void KvCache::check_layer(int layer) const {
  EV_CHECK(layer >= 0 && layer < n_layer_, "KV cache: layer %d out of range", layer);
}

size_t KvCache::kv_slot(int layer) const {
  check_layer(layer);
  EV_CHECK(slot_[size_t(layer)] >= 0, "KV cache: layer %d is a convolution layer and has no K/V rows", layer);
  return size_t(slot_[size_t(layer)]);
}

void KvCache::write(int layer, int pos, int n, const float* k, const float* v) {
  const size_t slot = kv_slot(layer);
  EV_CHECK(pos >= 0 && n >= 0 && int64_t(pos) + n <= n_ctx_,
           "KV cache: positions %d..%d exceed the context of %d", pos, pos + n - 1, n_ctx_);
  const size_t off = slot * layer_elems_ + size_t(pos) * size_t(kv_dim_);
  const size_t count = size_t(n) * size_t(kv_dim_);
  switch (type_) {
    case KvType::F32:
      std::memcpy(k_.get() + off * 4, k, count * sizeof(float));
      std::memcpy(v_.get() + off * 4, v, count * sizeof(float));
      break;
    case KvType::F16: {
      uint16_t* kd = reinterpret_cast<uint16_t*>(k_.get()) + off;
      uint16_t* vd = reinterpret_cast<uint16_t*>(v_.get()) + off;
      for (size_t i = 0; i < count; ++i) kd[i] = f32_to_f16(k[i]), vd[i] = f32_to_f16(v[i]);
      break;
    }
    case KvType::Q8: {
      int8_t* kd = reinterpret_cast<int8_t*>(k_.get()) + off;
      int8_t* vd = reinterpret_cast<int8_t*>(v_.get()) + off;
      const size_t soff = slot * layer_scales_ + size_t(pos) * size_t(n_head_kv_);
      for (size_t r = 0; r < size_t(n) * size_t(n_head_kv_); ++r) {
        const size_t e = r * size_t(head_dim_);
        k_scale_[soff + r] = quantize_kv_row_q8(k + e, head_dim_, kd + e);
        v_scale_[soff + r] = quantize_kv_row_q8(v + e, head_dim_, vd + e);
      }
      break;
    }
  }
}

void KvCache::read(int layer, int pos, float* k, float* v) const {
  const size_t slot = kv_slot(layer);
  EV_CHECK(pos >= 0 && pos < n_ctx_, "KV cache: position %d outside the context of %d", pos, n_ctx_);
  const size_t off = slot * layer_elems_ + size_t(pos) * size_t(kv_dim_);
  const size_t soff = slot * layer_scales_ + size_t(pos) * size_t(n_head_kv_);
  for (int which = 0; which < 2; ++which) {
    float* dst = which == 0 ? k : v;
    if (!dst) continue;
    const uint8_t* src = (which == 0 ? k_ : v_).get();
    switch (type_) {
      case KvType::F32: std::memcpy(dst, src + off * 4, size_t(kv_dim_) * sizeof(float)); break;
      case KvType::F16:
        dequantize_row(GGMLType::F16, reinterpret_cast<const uint16_t*>(src) + off, dst, kv_dim_);
        break;
      case KvType::Q8: {
        const uint16_t* sc = (which == 0 ? k_scale_ : v_scale_).get() + soff;
        for (int h = 0; h < n_head_kv_; ++h)
          dequantize_kv_row_q8(reinterpret_cast<const int8_t*>(src) + off + size_t(h) * head_dim_, sc[h], head_dim_,
                               dst + size_t(h) * head_dim_);
        break;
      }
    }
  }
}

void KvCache::attention_view(int layer, AttentionArgs& a) const {
  const size_t slot = kv_slot(layer);
  a.kv_stride = kv_dim_;
  a.k = nullptr;
  a.v = nullptr;
  a.k_raw = a.v_raw = nullptr;
  a.k_scale = a.v_scale = nullptr;
  const size_t off = slot * layer_elems_ * elem_bytes();
  switch (type_) {
    case KvType::F32:
      a.kv_type = KvElem::F32;
      a.k = reinterpret_cast<const float*>(k_.get() + off);
      a.v = reinterpret_cast<const float*>(v_.get() + off);
      break;
    case KvType::F16:
      a.kv_type = KvElem::F16;
      a.k_raw = k_.get() + off;
      a.v_raw = v_.get() + off;
      break;
    case KvType::Q8:
      a.kv_type = KvElem::Q8;
      a.k_raw = k_.get() + off;
      a.v_raw = v_.get() + off;
      a.k_scale = k_scale_.get() + slot * layer_scales_;
      a.v_scale = v_scale_.get() + slot * layer_scales_;
      break;
  }
}

int KvCache::position_after(int slot) const {
  EV_CHECK(!next_pos_.empty() && slot >= 0 && slot < n_ctx_, "KV cache: no RoPE position after slot %d", slot);
  return next_pos_[size_t(slot)];
}

void KvCache::set_position_after(int slot, int pos) {
  EV_CHECK(!next_pos_.empty() && slot >= 0 && slot < n_ctx_, "KV cache: cannot record a RoPE position at slot %d",
           slot);
  next_pos_[size_t(slot)] = pos;
}

void KvCache::advance(int n) {
  EV_CHECK(n >= 0 && int64_t(n_past_) + n <= n_ctx_, "KV cache: advancing by %d from %d exceeds %d", n,
           n_past_, n_ctx_);
  n_past_ += n;
}

void KvCache::truncate(int n_past) {
  EV_CHECK(n_past >= 0 && n_past <= n_past_, "KV cache: cannot truncate to %d (holds %d)", n_past, n_past_);
  if (n_past == 0) {
    clear();
    return;
  }
  EV_CHECK(conv_.empty() || n_past == n_past_,
           "KV cache: cannot go back to %d of %d positions: the model's convolution state holds no history",
           n_past, n_past_);
  n_past_ = n_past;
}

void KvCache::restore(const Checkpoint& c) {
  EV_CHECK(c.n_past >= 0 && c.n_past <= n_past_ && c.conv.size() == conv_.size(),
           "KV cache: cannot restore a checkpoint at %d (holds %d)", c.n_past, n_past_);
  n_past_ = c.n_past;
  conv_ = c.conv;
}

const float* KvCache::k_f32(int layer) const {
  EV_CHECK(type_ == KvType::F32, "KV cache: k_f32 on a %s cache", kv_type_name(type_));
  return reinterpret_cast<const float*>(k_.get()) + kv_slot(layer) * layer_elems_;
}
const float* KvCache::v_f32(int layer) const {
  EV_CHECK(type_ == KvType::F32, "KV cache: v_f32 on a %s cache", kv_type_name(type_));
  return reinterpret_cast<const float*>(v_.get()) + kv_slot(layer) * layer_elems_;
}

}  // namespace edgevlm
