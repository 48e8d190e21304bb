#include "model/llm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/pages.h"
#include "model/kv_cache.h"
#include "model/llm_arch.h"
#include "ops/activations.h"
#include "ops/attention.h"
#include "ops/norms.h"
#include "ops/short_conv.h"

namespace edgevlm {

namespace {

int get_count(const GGUFFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const GGUFValue* v = f.find(key);
  EV_CHECK(v != nullptr, "%s: missing metadata key '%s'", f.path().c_str(), key.c_str());
  int64_t x = f.get_int(key);
  EV_CHECK(x >= lo && x <= hi, "%s: metadata '%s' = %lld is outside [%lld, %lld]", f.path().c_str(),
           key.c_str(), (long long)x, (long long)lo, (long long)hi);
  return int(x);
}

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Dimensions with trailing 1s removed (some writers store vectors as [n, 1]).
std::vector<int64_t> squeezed(const std::vector<int64_t>& ne) {
  std::vector<int64_t> s = ne;
  while (s.size() > 1 && s.back() == 1) s.pop_back();
  return s;
}

const GGUFTensorInfo& need_tensor(const GGUFFile& f, const std::string& name) {
  const GGUFTensorInfo* t = f.find_tensor(name);
  EV_CHECK(t != nullptr, "%s: tensor '%s' is missing", f.path().c_str(), name.c_str());
  return *t;
}

WeightMatrix matrix(const GGUFFile& f, const std::string& name, int64_t n_in, int64_t n_out) {
  const GGUFTensorInfo& t = need_tensor(f, name);
  std::vector<int64_t> ne = squeezed(t.ne);
  EV_CHECK(ne.size() == 2 && ne[0] == n_in && ne[1] == n_out,
           "%s: tensor '%s' has shape %s, the model config needs [%lld, %lld]", f.path().c_str(),
           name.c_str(), shape_str(t.ne).c_str(), (long long)n_in, (long long)n_out);
  EV_CHECK(matmul_supports(t.type), "%s: unsupported tensor type %s (id %u) in tensor '%s'", f.path().c_str(),
           type_name(t.type).c_str(), unsigned(t.type), name.c_str());
  GGUFTensorInfo t2 = t;
  t2.ne = ne;
  return WeightMatrix::from_tensor(t2);
}

// Rows [first, first + n) of a matrix, as a matrix of its own (a view: fused Q/K/V, gate/up).
WeightMatrix rows_of(const WeightMatrix& w, int64_t first, int64_t n) {
  WeightMatrix r = w;
  r.data = w.data + size_t(first) * w.row_stride;
  r.n_out = n;
  return r;
}

}  // namespace

LlmConfig LlmConfig::from_gguf(const GGUFFile& f) {
  LlmConfig c;
  EV_CHECK(f.has("general.architecture"), "%s: missing metadata key 'general.architecture'", f.path().c_str());
  c.arch = f.get_string("general.architecture");
  EV_CHECK(llm_arch_supported(c.arch), "%s: architecture '%s' is not supported by the decoder (supported: %s)",
           f.path().c_str(), c.arch.c_str(), supported_llm_archs().c_str());
  const std::string a = c.arch + ".";
  constexpr int64_t kMaxDim = 1 << 20;
  c.n_embd = get_count(f, a + "embedding_length", 1, kMaxDim);
  c.n_layer = get_count(f, a + "block_count", 1, 4096);
  c.n_head = get_count(f, a + "attention.head_count", 1, 4096);
  c.n_head_kv = c.n_head;
  c.conv_layer.assign(size_t(c.n_layer), 0);
  if (const GGUFValue* kv = f.find(a + "attention.head_count_kv"); kv && kv->type == GGUFType::ARRAY) {
    // One entry per layer (LFM2): 0 marks a convolution layer; the attention layers must agree.
    const std::vector<int64_t> per_layer = f.get_ints(a + "attention.head_count_kv");
    EV_CHECK(int64_t(per_layer.size()) == c.n_layer, "%s: '%sattention.head_count_kv' has %zu entries for %d layers",
             f.path().c_str(), a.c_str(), per_layer.size(), c.n_layer);
    c.n_head_kv = 0;
    for (size_t l = 0; l < per_layer.size(); ++l) {
      const int64_t h = per_layer[l];
      EV_CHECK(h >= 0 && h <= 4096 && (h == 0 || c.n_head_kv == 0 || h == c.n_head_kv),
               "%s: '%sattention.head_count_kv' = %lld at layer %zu: the attention layers must share one count",
               f.path().c_str(), a.c_str(), (long long)h, l);
      if (h > 0) c.n_head_kv = int(h);
      c.conv_layer[l] = h == 0;
    }
    EV_CHECK(c.n_head_kv > 0, "%s: '%sattention.head_count_kv' has no attention layer", f.path().c_str(), a.c_str());
  } else if (kv) {
    c.n_head_kv = get_count(f, a + "attention.head_count_kv", 1, 4096);
  }
  c.n_ff = get_count(f, a + "feed_forward_length", 1, kMaxDim);
  c.n_ctx_train = get_count(f, a + "context_length", 1, 1 << 24);
  EV_CHECK(f.has(a + "attention.layer_norm_rms_epsilon"), "%s: missing metadata key '%s'",
           f.path().c_str(), (a + "attention.layer_norm_rms_epsilon").c_str());
  c.rms_eps = float(f.get_float(a + "attention.layer_norm_rms_epsilon"));
  EV_CHECK(c.rms_eps >= 0 && c.rms_eps < 1, "%s: '%sattention.layer_norm_rms_epsilon' = %g is out of range",
           f.path().c_str(), a.c_str(), double(c.rms_eps));
  c.rope_freq_base = float(f.get_float_or(a + "rope.freq_base", 10000.0));
  EV_CHECK(c.rope_freq_base > 0 && std::isfinite(c.rope_freq_base), "%s: '%srope.freq_base' must be positive",
           f.path().c_str(), a.c_str());
  EV_CHECK(c.n_head % c.n_head_kv == 0, "%s: head_count %d is not a multiple of head_count_kv %d",
           f.path().c_str(), c.n_head, c.n_head_kv);
  if (f.has(a + "attention.key_length")) {
    c.head_dim = get_count(f, a + "attention.key_length", 2, 4096);
    if (f.has(a + "attention.value_length"))
      EV_CHECK(f.get_int(a + "attention.value_length") == c.head_dim,
               "%s: attention.value_length differs from key_length, which this decoder does not support",
               f.path().c_str());
  } else {
    EV_CHECK(c.n_embd % c.n_head == 0, "%s: embedding_length %d is not a multiple of head_count %d",
             f.path().c_str(), c.n_embd, c.n_head);
    c.head_dim = c.n_embd / c.n_head;
  }
  c.n_rot = f.has(a + "rope.dimension_count") ? get_count(f, a + "rope.dimension_count", 0, c.head_dim)
                                              : c.head_dim;
  EV_CHECK(c.n_rot % 2 == 0, "%s: rope.dimension_count %d must be even", f.path().c_str(), c.n_rot);

  const GGUFTensorInfo& emb = need_tensor(f, "token_embd.weight");
  std::vector<int64_t> ne = squeezed(emb.ne);
  EV_CHECK(ne.size() == 2 && ne[0] == c.n_embd && ne[1] >= 1 && ne[1] <= (1 << 24),
           "%s: tensor 'token_embd.weight' has shape %s, expected [%d, n_vocab]", f.path().c_str(),
           shape_str(emb.ne).c_str(), c.n_embd);
  c.n_vocab = int(ne[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  apply_arch_conventions(f, c);
  return c;
}

const float* LlmModel::vector_f32(const std::string& name, int64_t n) { return dense_f32(name, {n}); }

const float* LlmModel::dense_f32(const std::string& name, const std::vector<int64_t>& want) {
  const GGUFFile& f = *file_;
  const GGUFTensorInfo& t = need_tensor(f, name);
  std::vector<int64_t> ne = squeezed(t.ne);
  EV_CHECK(ne == want, "%s: tensor '%s' has shape %s, the model config needs %s", f.path().c_str(), name.c_str(),
           shape_str(t.ne).c_str(), shape_str(want).c_str());
  const int64_t row = want[0], n = t.n_elements();
  EV_CHECK(type_supported(t.type), "%s: unsupported tensor type %s (id %u) in tensor '%s'", f.path().c_str(),
           type_name(t.type).c_str(), unsigned(t.type), name.c_str());
  EV_CHECK(row % int64_t(type_block_elems(t.type)) == 0, "%s: tensor '%s' rows of %lld elements do not fill %s blocks",
           f.path().c_str(), name.c_str(), (long long)row, type_name(t.type).c_str());
  EV_CHECK(t.data != nullptr && t.nbytes >= row_bytes(t.type, row) * size_t(n / row),
           "%s: tensor '%s' data is truncated", f.path().c_str(), name.c_str());
  if (t.type == GGMLType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);
  owned_.emplace_back(size_t(n));
  for (int64_t r = 0; r < n / row; ++r)
    dequantize_row(t.type, t.data + size_t(r) * row_bytes(t.type, row), owned_.back().data() + r * row, row);
  return owned_.back().data();
}

std::unique_ptr<LlmModel> LlmModel::load(const GGUFFile& f, ThreadPool* pool,
                                         const std::vector<const LoraAdapter*>& adapters, LoraMode mode) {
  std::unique_ptr<LlmModel> m(new LlmModel());
  m->file_ = &f;
  m->cfg_ = LlmConfig::from_gguf(f);
  const LlmConfig& c = m->cfg_;
  const int64_t q_dim = int64_t(c.n_head) * c.head_dim;
  const int64_t kv_dim = int64_t(c.n_head_kv) * c.head_dim;

  {
    const GGUFTensorInfo& t = need_tensor(f, "token_embd.weight");
    EV_CHECK(type_supported(t.type), "%s: unsupported tensor type %s (id %u) in tensor 'token_embd.weight'",
             f.path().c_str(), type_name(t.type).c_str(), unsigned(t.type));
    EV_CHECK(c.n_embd % int64_t(type_block_elems(t.type)) == 0,
             "%s: tensor 'token_embd.weight' rows of %d elements do not fill %s blocks", f.path().c_str(), c.n_embd,
             type_name(t.type).c_str());
    if (c.tied_output) {
      m->token_embd_ = matrix(f, "token_embd.weight", c.n_embd, c.n_vocab);
    } else {
      GGUFTensorInfo t2 = t;
      t2.ne = squeezed(t.ne);
      m->token_embd_.type = t.type;
      m->token_embd_.data = t.data;
      m->token_embd_.n_in = c.n_embd;
      m->token_embd_.n_out = c.n_vocab;
      m->token_embd_.row_stride = row_bytes(t.type, c.n_embd);
      EV_CHECK(t.data != nullptr && m->token_embd_.bytes() <= t.nbytes,
               "%s: tensor 'token_embd.weight' data is truncated", f.path().c_str());
    }
  }
  m->output_ = c.tied_output ? m->token_embd_ : matrix(f, "output.weight", c.n_embd, c.n_vocab);
  m->output_norm_ = m->vector_f32(c.output_norm_name, c.n_embd);
  // A tied table is also the output matrix: products that read it in place (no repacked copy)
  // would page all of it back in after every lookup.
  m->release_embd_rows_ = !c.tied_output && in_read_only_file_mapping(m->token_embd_.data, m->token_embd_.bytes());

  // Every matrix by its tensor's name, for LoRA adapters (views of a fused tensor share its name).
  std::vector<LoraTarget> targets;
  if (!c.tied_output) targets.push_back({"output.weight", &m->output_, 0, c.n_vocab});
  m->layers_.resize(size_t(c.n_layer));
  for (int l = 0; l < c.n_layer; ++l) {
    LlmLayer& L = m->layers_[size_t(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    auto whole = [&](const std::string& name, WeightMatrix& w, int64_t n_in, int64_t n_out) {
      w = matrix(f, p + name, n_in, n_out);
      targets.push_back({p + name, &w, 0, n_out});
    };
    // One matrix whose rows are several: parts[i] gets n_rows[i] of them, in order.
    auto fused = [&](const std::string& name, int64_t n_in,
                     std::initializer_list<std::pair<WeightMatrix*, int64_t>> parts) {
      int64_t n_out = 0;
      for (const auto& pr : parts) n_out += pr.second;
      const WeightMatrix all = matrix(f, p + name, n_in, n_out);
      int64_t first = 0;
      for (const auto& [w, n] : parts) {
        *w = rows_of(all, first, n);
        targets.push_back({p + name, w, first, n_out});
        first += n;
      }
    };
    L.attn_norm = m->vector_f32(p + "attn_norm.weight", c.n_embd);
    L.ffn_norm = m->vector_f32(p + "ffn_norm.weight", c.n_embd);
    whole("ffn_down.weight", L.w_down, c.n_ff, c.n_embd);
    if (c.fused_gate_up) {  // the gate's rows, then the up projection's
      fused("ffn_up.weight", c.n_embd, {{&L.w_gate, c.n_ff}, {&L.w_up, c.n_ff}});
    } else {
      whole("ffn_gate.weight", L.w_gate, c.n_embd, c.n_ff);
      whole("ffn_up.weight", L.w_up, c.n_embd, c.n_ff);
    }
    if (c.is_conv(l)) {  // LFM2 convolution layer: no attention tensors
      whole("shortconv.in_proj.weight", L.conv_in, c.n_embd, 3 * int64_t(c.n_embd));
      whole("shortconv.out_proj.weight", L.conv_out, c.n_embd, c.n_embd);
      L.conv_w = m->dense_f32(p + "shortconv.conv.weight", {c.conv_kernel, c.n_embd});
      continue;
    }
    if (c.fused_qkv) {  // one matrix, its rows Q then K then V
      fused("attn_qkv.weight", c.n_embd, {{&L.wq, q_dim}, {&L.wk, kv_dim}, {&L.wv, kv_dim}});
    } else {
      whole("attn_q.weight", L.wq, c.n_embd, q_dim);
      whole("attn_k.weight", L.wk, c.n_embd, kv_dim);
      whole("attn_v.weight", L.wv, c.n_embd, kv_dim);
    }
    whole("attn_output.weight", L.wo, q_dim, c.n_embd);
    for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
      const bool has = f.find_tensor(p + b) != nullptr;
      EV_CHECK(has == c.qkv_bias, "%s: tensor '%s' is %s, but layer 0 %s QKV biases", f.path().c_str(),
               (p + b).c_str(), has ? "present" : "missing", c.qkv_bias ? "has" : "has no");
    }
    if (c.qkv_bias) {
      L.bq = m->vector_f32(p + "attn_q.bias", q_dim);
      L.bk = m->vector_f32(p + "attn_k.bias", kv_dim);
      L.bv = m->vector_f32(p + "attn_v.bias", kv_dim);
    }
    if (c.qk_norm) {
      L.q_norm = m->vector_f32(p + "attn_q_norm.weight", c.head_dim);
      L.k_norm = m->vector_f32(p + "attn_k_norm.weight", c.head_dim);
    }
    if (c.post_norms) {
      L.attn_post_norm = m->vector_f32(p + "post_attention_norm.weight", c.n_embd);
      L.ffn_post_norm = m->vector_f32(p + "post_ffw_norm.weight", c.n_embd);
    }
  }
  // RoPE frequency factors: one tensor for all layers (llama.cpp duplicates it per layer).
  const int64_t n_factors = c.n_rot / 2;
  if (f.find_tensor("rope_freqs.weight")) m->rope_freqs_ = m->vector_f32("rope_freqs.weight", n_factors);
  if (f.find_tensor("rope_factors_long.weight"))
    m->rope_long_ = m->vector_f32("rope_factors_long.weight", n_factors);
  if (f.find_tensor("rope_factors_short.weight"))
    m->rope_short_ = m->vector_f32("rope_factors_short.weight", n_factors);
  // Before the repack below: merging replaces a matrix by a private copy.
  if (!adapters.empty()) m->lora_ = std::make_unique<LoraWeights>(adapters, targets, f, c.arch, mode, pool);
  if (pool)
    for (const WeightMatrix* w : m->matrices()) matmul_prepare(*w, *pool);
  return m;
}

const float* LlmModel::rope_factors(int n_ctx) const {
  if (rope_freqs_) return rope_freqs_;
  return n_ctx > cfg_.n_ctx_orig && rope_long_ ? rope_long_ : rope_short_;
}

LlmModel::~LlmModel() {
  for (const WeightMatrix* w : matrices()) matmul_forget(*w);
}

std::vector<const WeightMatrix*> LlmModel::matrices() const {
  // The embedding table is read by rows, not multiplied, unless it is also the output matrix.
  std::vector<const WeightMatrix*> ws = {&output_};
  for (const LlmLayer& L : layers_)
    for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down, &L.conv_in, &L.conv_out})
      if (w->data) ws.push_back(w);  // a layer has either attention or convolution matrices
  return ws;
}

void LlmModel::embed_tokens(const int32_t* tokens, int n, float* out) const {
  for (int i = 0; i < n; ++i) {
    const int32_t id = tokens[i];
    EV_CHECK(id >= 0 && id < cfg_.n_vocab, "token id %d is outside the vocabulary [0, %d)", id, cfg_.n_vocab);
    float* row = out + int64_t(i) * cfg_.n_embd;
    dequantize_row(token_embd_.type, token_embd_.data + size_t(id) * token_embd_.row_stride, row, cfg_.n_embd);
    if (cfg_.embd_scale != 1.0f)
      for (int j = 0; j < cfg_.n_embd; ++j) row[j] *= cfg_.embd_scale;
  }
  // Where the kernel maps file pages by large folios (ext4 on Linux 6.18 here), reading one row
  // maps up to 2 MiB around it: a few hundred lookups kept most of bluelm-v-3b's 272 MB table in
  // RSS. The rows are copied out, so their pages go back (to the page cache, not the disk).
  if (release_embd_rows_) release_mapped_file_pages(token_embd_.data, token_embd_.bytes());
}

size_t LlmModel::weight_bytes_per_token() const {
  size_t total = output_.bytes();
  for (const LlmLayer& L : layers_)
    total += L.wq.bytes() + L.wk.bytes() + L.wv.bytes() + L.wo.bytes() + L.w_gate.bytes() + L.w_up.bytes() +
             L.w_down.bytes() + L.conv_in.bytes() + L.conv_out.bytes();
  return total;
}

namespace {

// Activation buffers of llm_forward, one set per calling thread, grown to the largest batch seen
// and then reused: a decode step allocates none of them.
struct ForwardBuffers {
  std::vector<float> x, xb, q, k, v, att, proj, gate, up, rope, rope_swa, bcx, conv;
  std::vector<int32_t> pos3;  // M-RoPE coordinates of the new positions
  static float* get(std::vector<float>& buf, int64_t n) {
    if (buf.size() < size_t(n)) buf.resize(size_t(n));
    return buf.data();
  }
};
thread_local ForwardBuffers t_forward_buffers;

// What every sub-block of one llm_forward call shares.
struct Step {
  const LlmConfig& c;
  KvCache& cache;
  ThreadPool& pool;
  ForwardBuffers& b;
  int n;            // new positions
  int pos0;         // the first one's position
  const float* rope;      // cos/sin table of the global layers (n × n_rot)
  const float* rope_swa;  // of the sliding-window layers, or null
  const LoraWeights* lora;  // adapters applied on the fly, or null
  PositionSpan bidirectional;  // positions that see each other both ways (empty: causal)

  // y = W·x for the n positions, plus W's LoRA term B·(A·x) when it has one on the fly (which
  // adds onto rows of n_out floats: out.ldy must stay 0).
  void linear(const WeightMatrix& w, const float* x, float* y, const MatmulOut& out = {}) const {
    matmul_lora(w, x, n, y, pool, lora, out);
  }
};

// x += post_norm(Wo · attn(rope(qk_norm(Wq·norm(x))), rope(qk_norm(Wk·norm(x))), Wv·norm(x)))
void attention_block(const Step& s, const LlmLayer& L, int l, float* x) {
  const LlmConfig& c = s.c;
  const int n = s.n;
  const int64_t D = c.n_embd, HD = c.head_dim;
  const int64_t q_dim = int64_t(c.n_head) * HD, kv_dim = int64_t(c.n_head_kv) * HD;
  ForwardBuffers& b = s.b;
  float* xb = b.get(b.xb, n * D);
  float* q = b.get(b.q, n * q_dim);
  float* k = b.get(b.k, n * kv_dim);
  float* v = b.get(b.v, n * kv_dim);
  float* att = b.get(b.att, n * q_dim);
  float* proj = b.get(b.proj, n * D);

  rms_norm(x, L.attn_norm, c.rms_eps, D, n, xb);
  s.linear(L.wq, xb, q);
  s.linear(L.wk, xb, k, {.same_x = true});  // Q's quantization of xb reused
  s.linear(L.wv, xb, v, {.same_x = true});
  if (L.bq) {
    add_bias(q, L.bq, q_dim, n);
    add_bias(k, L.bk, kv_dim, n);
    add_bias(v, L.bv, kv_dim, n);
  }
  if (L.q_norm) {  // every head of every position is a row of head_dim
    rms_norm(q, L.q_norm, c.rms_eps, HD, n * int64_t(c.n_head), q);
    rms_norm(k, L.k_norm, c.rms_eps, HD, n * int64_t(c.n_head_kv), k);
  }
  const bool swa = c.is_swa(l);
  const int64_t rope_row = c.n_rot / 2 * 2;
  for (int i = 0; i < n; ++i) {
    const float* cs = (swa ? s.rope_swa : s.rope) + i * rope_row;
    rope_apply(c.rope_type, q + i * q_dim, c.n_head, c.head_dim, c.n_rot, cs);
    rope_apply(c.rope_type, k + i * kv_dim, c.n_head_kv, c.head_dim, c.n_rot, cs);
  }
  s.cache.write(l, s.pos0, n, k, v);

  AttentionArgs a;
  a.q = q;
  a.q_stride = q_dim;
  s.cache.attention_view(l, a);  // K/V rows in the cache's storage type (F32, F16 or INT8)
  a.out = att;
  a.out_stride = q_dim;
  a.n_q = n;
  a.pos0 = s.pos0;
  a.n_head = c.n_head;
  a.n_head_kv = c.n_head_kv;
  a.head_dim = c.head_dim;
  a.scale = c.attn_scale;
  a.window = swa ? c.n_swa : 0;
  a.bidir_begin = s.bidirectional.begin;
  a.bidir_end = s.bidirectional.end;
  attention(a, s.pool);
  s.linear(L.wo, att, proj);
  if (L.attn_post_norm) rms_norm(proj, L.attn_post_norm, c.rms_eps, D, n, proj);
  add_inplace(x, proj, n * D);
}

// LFM2's convolution block: x += W_out · (C ⊙ conv(B ⊙ x')), [B, C, x'] = W_in · norm(x); the
// convolution continues from the state the cache holds for this layer.
void conv_block(const Step& s, const LlmLayer& L, int l, float* x) {
  const LlmConfig& c = s.c;
  const int n = s.n;
  const int64_t D = c.n_embd;
  ForwardBuffers& b = s.b;
  float* xb = b.get(b.xb, n * D);
  float* bcx = b.get(b.bcx, n * 3 * D);
  float* bx = b.get(b.conv, n * 2 * D);  // B ⊙ x', then the convolution's output
  float* y = bx + n * D;
  float* proj = b.get(b.proj, n * D);

  rms_norm(x, L.attn_norm, c.rms_eps, D, n, xb);
  s.linear(L.conv_in, xb, bcx);
  for (int i = 0; i < n; ++i) {
    const float* row = bcx + i * 3 * D;
    for (int64_t j = 0; j < D; ++j) bx[i * D + j] = row[j] * row[2 * D + j];
  }
  short_conv_causal(bx, n, D, L.conv_w, c.conv_kernel, s.cache.conv_state(l), y);
  for (int i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) y[i * D + j] *= bcx[i * 3 * D + D + j];
  s.linear(L.conv_out, y, proj);
  add_inplace(x, proj, n * D);
}

// Gated feed-forward: x += post_norm(W_down · (act(W_gate·norm(x)) ⊙ W_up·norm(x)))
void ffn_block(const Step& s, const LlmLayer& L, float* x) {
  const LlmConfig& c = s.c;
  const int n = s.n;
  const int64_t D = c.n_embd, F = c.n_ff;
  ForwardBuffers& b = s.b;
  float* xb = b.get(b.xb, n * D);
  float* gate = b.get(b.gate, n * F);
  float* up = b.get(b.up, n * F);
  float* proj = b.get(b.proj, n * D);

  rms_norm(x, L.ffn_norm, c.rms_eps, D, n, xb);
  s.linear(L.w_gate, xb, gate);
  s.linear(L.w_up, xb, up, {.same_x = true});
  if (c.ffn_act == FfnAct::SiLU)
    swiglu(gate, up, n * F);
  else
    geglu_tanh(gate, up, n * F);
  s.linear(L.w_down, gate, proj);
  if (L.ffn_post_norm) rms_norm(proj, L.ffn_post_norm, c.rms_eps, D, n, proj);
  add_inplace(x, proj, n * D);
}

// M-RoPE (LlmConfig::mrope): the (t, h, w) coordinates of the n new positions, as llama.cpp's mtmd
// gives them: a text token at position p takes (p, p, p) and the next one p + 1; the tokens of an
// image grid that starts at position p0 take (p0, p0 + row, p0 + column), and the position after
// them is p0 + max(rows, columns). The position after each slot is kept in the cache, so that a
// grid cut by a prefill chunk, a decode step or a truncated cache continue where they should.
// Writes the rotation table (n × n_rot/2 (cos, sin)) into rope.
void mrope_table(const LlmConfig& c, KvCache& cache, const std::vector<PositionSpan>& spans, int n,
                 const RopeScaling& scaling, std::vector<int32_t>& pos3, float* rope) {
  const int pos0 = cache.n_past();
  pos3.resize(size_t(3) * size_t(n));
  int p = cache.next_position();
  for (const PositionSpan& s : spans)
    if (s.grid_w > 0 || s.grid_h > 0)
      EV_CHECK(s.grid_w > 0 && s.grid_h > 0 && int64_t(s.grid_w) * s.grid_h == int64_t(s.end) - s.begin && s.begin >= 0,
               "llm_forward: image grid %d x %d does not fill its positions [%d, %d)", s.grid_w, s.grid_h, s.begin,
               s.end);
  for (int i = 0; i < n; ++i) {
    const int slot = pos0 + i;
    const PositionSpan* g = nullptr;
    for (const PositionSpan& s : spans)
      if (s.grid_w > 0 && slot >= s.begin && slot < s.end) g = &s;
    int32_t* xyz = pos3.data() + 3 * i;
    int next;
    if (g) {
      // The grid's first position: reached in this call, or (a grid begun in an earlier chunk) the
      // position after the slot before it.
      int first;
      if (slot == g->begin) first = p;
      else if (g->begin >= pos0) first = pos3[size_t(3) * size_t(g->begin - pos0)];  // its first token's t
      else first = g->begin == 0 ? 0 : cache.position_after(g->begin - 1);
      const int k = slot - g->begin;
      xyz[0] = first;
      xyz[1] = first + k / g->grid_w;
      xyz[2] = first + k % g->grid_w;
      next = first + std::max(g->grid_w, g->grid_h);
    } else {
      xyz[0] = xyz[1] = xyz[2] = p;
      next = p + 1;
    }
    cache.set_position_after(slot, next);
    p = next;
  }
  rope_table_sections(c.n_rot / 2, std::pow(c.rope_freq_base, -2.0f / float(c.n_rot)), c.rope_sections, pos3.data(),
                      n, rope, scaling);
}

}  // namespace

// The forward pass, top to bottom. Activations are row-major: one row per new position.
void llm_forward(const LlmModel& m, KvCache& cache, const float* embeddings, int n, float* logits,
                 bool all_logits, ThreadPool& pool, const std::vector<PositionSpan>& spans) {
  const LlmConfig& c = m.config();
  EV_CHECK(n >= 1, "llm_forward: need at least one position, got %d", n);
  EV_CHECK(cache.n_layer() == c.n_layer && cache.kv_dim() == c.n_head_kv * c.head_dim,
           "llm_forward: the KV cache was made for another model shape");
  const int pos0 = cache.n_past();
  EV_CHECK(int64_t(pos0) + n <= cache.n_ctx(),
           "%d new positions after %d cached ones exceed the context of %d positions", n, pos0, cache.n_ctx());

  const int64_t D = c.n_embd;
  const int64_t rope_row = c.n_rot / 2 * 2;  // (cos, sin) × n_rot/2 per position
  ForwardBuffers& b = t_forward_buffers;
  float* x = b.get(b.x, n * D);  // residual stream
  std::copy(embeddings, embeddings + n * D, x);
  // Two RoPE tables: the global layers' and, with a sliding window, the local layers' (own base,
  // no scaling).
  RopeScaling scaling;
  scaling.freq_scale = c.rope_freq_scale;
  scaling.freq_factors = m.rope_factors(cache.n_ctx());
  scaling.attn_factor = c.rope_attn_factor;
  float* rope = b.get(b.rope, n * rope_row);
  if (c.mrope)
    mrope_table(c, cache, spans, n, scaling, b.pos3, rope);
  else
    rope_table(c.n_rot, c.rope_freq_base, pos0, n, rope, scaling);
  float* rope_swa = nullptr;
  if (c.n_swa > 0) {
    rope_swa = b.get(b.rope_swa, n * rope_row);
    rope_table(c.n_rot, c.rope_freq_base_swa, pos0, n, rope_swa, RopeScaling{});
  }

  PositionSpan bidirectional;
  for (const PositionSpan& s : spans) {
    if (!s.bidirectional || s.empty()) continue;
    EV_CHECK(bidirectional.empty(), "llm_forward: more than one bidirectional span among the new positions");
    EV_CHECK(s.begin >= pos0 && s.end <= pos0 + n,
             "llm_forward: bidirectional positions [%d, %d) are not among the %d new ones from %d", s.begin, s.end, n,
             pos0);
    bidirectional = s;
  }
  const Step step{c, cache, pool, b, n, pos0, rope, rope_swa, m.lora(), bidirectional};
  for (int l = 0; l < c.n_layer; ++l) {
    const LlmLayer& L = m.layers()[size_t(l)];
    if (c.is_conv(l))
      conv_block(step, L, l, x);
    else
      attention_block(step, L, l, x);
    ffn_block(step, L, x);
  }
  cache.advance(n);
  if (logits == nullptr) return;

  // Logits: only the last position unless all are asked for.
  const int first = all_logits ? 0 : n - 1;
  const int n_out = n - first;
  float* xb = b.get(b.xb, n * D);
  rms_norm(x + first * D, m.output_norm(), c.rms_eps, D, n_out, xb);
  {
    // The last position's logits: one row whatever the chunking (ops/matmul.h, PromptRowsScope).
    PromptRowsScope one_row(PromptRowsScope::active() && n_out > 1);
    matmul(m.output(), xb, n_out, logits, pool);
  }
  if (m.lora())
    if (const LoraDelta* d = m.lora()->delta(m.output())) lora_delta_add(*d, xb, n_out, logits, pool);
  if (c.logit_softcap > 0) {
    const float cap = c.logit_softcap;
    for (int64_t i = 0; i < int64_t(n_out) * c.n_vocab; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
  }
}

}  // namespace edgevlm
