#include "model/llm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/pages.h"
#include "model/kv_cache.h"
#include "ops/activations.h"
#include "ops/attention.h"
#include "ops/norms.h"

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

}  // namespace

LlmConfig LlmConfig::from_gguf(const GGUFFile& f) {
  LlmConfig c;
  EV_CHECK(f.has("general.architecture"), "%s: missing metadata key 'general.architecture'", f.path().c_str());
  c.arch = f.get_string("general.architecture");
  EV_CHECK(c.arch == "llama" || c.arch == "qwen2",
           "%s: architecture '%s' is not supported by the decoder (llama, qwen2)", f.path().c_str(),
           c.arch.c_str());
  const std::string a = c.arch + ".";
  constexpr int64_t kMaxDim = 1 << 20;
  c.n_embd = get_count(f, a + "embedding_length", 1, kMaxDim);
  c.n_layer = get_count(f, a + "block_count", 1, 4096);
  c.n_head = get_count(f, a + "attention.head_count", 1, 4096);
  c.n_head_kv = f.has(a + "attention.head_count_kv") ? get_count(f, a + "attention.head_count_kv", 1, 4096)
                                                      : c.n_head;
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
  c.rope_type = c.arch == "qwen2" ? RopeType::NeoX : RopeType::Normal;

  const GGUFTensorInfo& emb = need_tensor(f, "token_embd.weight");
  std::vector<int64_t> ne = squeezed(emb.ne);
  EV_CHECK(ne.size() == 2 && ne[0] == c.n_embd && ne[1] >= 1 && ne[1] <= (1 << 24),
           "%s: tensor 'token_embd.weight' has shape %s, expected [%d, n_vocab]", f.path().c_str(),
           shape_str(emb.ne).c_str(), c.n_embd);
  c.n_vocab = int(ne[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

const float* LlmModel::vector_f32(const std::string& name, int64_t n) {
  const GGUFFile& f = *file_;
  const GGUFTensorInfo& t = need_tensor(f, name);
  std::vector<int64_t> ne = squeezed(t.ne);
  EV_CHECK(ne.size() == 1 && ne[0] == n, "%s: tensor '%s' has shape %s, the model config needs [%lld]",
           f.path().c_str(), name.c_str(), shape_str(t.ne).c_str(), (long long)n);
  EV_CHECK(type_supported(t.type), "%s: unsupported tensor type %s (id %u) in tensor '%s'", f.path().c_str(),
           type_name(t.type).c_str(), unsigned(t.type), name.c_str());
  EV_CHECK(n % int64_t(type_block_elems(t.type)) == 0, "%s: tensor '%s' of %lld elements does not fill %s blocks",
           f.path().c_str(), name.c_str(), (long long)n, type_name(t.type).c_str());
  EV_CHECK(t.data != nullptr && t.nbytes >= row_bytes(t.type, n), "%s: tensor '%s' data is truncated",
           f.path().c_str(), name.c_str());
  if (t.type == GGMLType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);
  owned_.emplace_back(size_t(n));
  dequantize_row(t.type, t.data, owned_.back().data(), n);
  return owned_.back().data();
}

std::unique_ptr<LlmModel> LlmModel::load(const GGUFFile& f, ThreadPool* pool) {
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
  m->output_norm_ = m->vector_f32("output_norm.weight", c.n_embd);
  // A tied table is also the output matrix: products that read it in place (no repacked copy)
  // would page all of it back in after every lookup.
  m->release_embd_rows_ = !c.tied_output && in_read_only_file_mapping(m->token_embd_.data, m->token_embd_.bytes());

  m->layers_.resize(size_t(c.n_layer));
  for (int l = 0; l < c.n_layer; ++l) {
    LlmLayer& L = m->layers_[size_t(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    L.attn_norm = m->vector_f32(p + "attn_norm.weight", c.n_embd);
    L.wq = matrix(f, p + "attn_q.weight", c.n_embd, q_dim);
    L.wk = matrix(f, p + "attn_k.weight", c.n_embd, kv_dim);
    L.wv = matrix(f, p + "attn_v.weight", c.n_embd, kv_dim);
    L.wo = matrix(f, p + "attn_output.weight", q_dim, c.n_embd);
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
    L.ffn_norm = m->vector_f32(p + "ffn_norm.weight", c.n_embd);
    L.w_gate = matrix(f, p + "ffn_gate.weight", c.n_embd, c.n_ff);
    L.w_up = matrix(f, p + "ffn_up.weight", c.n_embd, c.n_ff);
    L.w_down = matrix(f, p + "ffn_down.weight", c.n_ff, c.n_embd);
  }
  if (pool)
    for (const WeightMatrix* w : m->matrices()) matmul_prepare(*w, *pool);
  return m;
}

LlmModel::~LlmModel() {
  for (const WeightMatrix* w : matrices()) matmul_forget(*w);
}

std::vector<const WeightMatrix*> LlmModel::matrices() const {
  // The embedding table is read by rows, not multiplied, unless it is also the output matrix.
  std::vector<const WeightMatrix*> ws = {&output_};
  for (const LlmLayer& L : layers_)
    for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) ws.push_back(w);
  return ws;
}

void LlmModel::embed_tokens(const int32_t* tokens, int n, float* out) const {
  for (int i = 0; i < n; ++i) {
    const int32_t id = tokens[i];
    EV_CHECK(id >= 0 && id < cfg_.n_vocab, "token id %d is outside the vocabulary [0, %d)", id, cfg_.n_vocab);
    dequantize_row(token_embd_.type, token_embd_.data + size_t(id) * token_embd_.row_stride,
                   out + int64_t(i) * cfg_.n_embd, cfg_.n_embd);
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
             L.w_down.bytes();
  return total;
}

namespace {

// Activation buffers of llm_forward, one set per calling thread, grown to the largest batch seen
// and then reused: a decode step allocates none of them.
struct ForwardBuffers {
  std::vector<float> x, xb, q, k, v, att, proj, gate, up, rope;
  static float* get(std::vector<float>& buf, int64_t n) {
    if (buf.size() < size_t(n)) buf.resize(size_t(n));
    return buf.data();
  }
};
thread_local ForwardBuffers t_forward_buffers;

}  // namespace

// The forward pass, top to bottom. Activations are row-major: one row per new position.
void llm_forward(const LlmModel& m, KvCache& cache, const float* embeddings, int n, float* logits,
                 bool all_logits, ThreadPool& pool) {
  const LlmConfig& c = m.config();
  EV_CHECK(n >= 1, "llm_forward: need at least one position, got %d", n);
  EV_CHECK(cache.n_layer() == c.n_layer && cache.kv_dim() == c.n_head_kv * c.head_dim,
           "llm_forward: the KV cache was made for another model shape");
  const int pos0 = cache.n_past();
  EV_CHECK(int64_t(pos0) + n <= cache.n_ctx(),
           "%d new positions after %d cached ones exceed the context of %d positions", n, pos0, cache.n_ctx());

  const int64_t D = c.n_embd, HD = c.head_dim;
  const int64_t q_dim = int64_t(c.n_head) * HD, kv_dim = int64_t(c.n_head_kv) * HD;
  const int64_t rope_row = c.n_rot / 2 * 2;  // (cos, sin) × n_rot/2 per position
  ForwardBuffers& b = t_forward_buffers;
  float* x = b.get(b.x, n * D);  // residual stream
  std::copy(embeddings, embeddings + n * D, x);
  float* xb = b.get(b.xb, n * D);  // normalized input of a sub-block
  float* q = b.get(b.q, n * q_dim);
  float* k = b.get(b.k, n * kv_dim);
  float* v = b.get(b.v, n * kv_dim);
  float* att = b.get(b.att, n * q_dim);
  float* proj = b.get(b.proj, n * D);
  float* gate = b.get(b.gate, n * c.n_ff);
  float* up = b.get(b.up, n * c.n_ff);
  float* rope = b.get(b.rope, n * rope_row);
  rope_table(c.n_rot, c.rope_freq_base, pos0, n, rope);

  for (int l = 0; l < c.n_layer; ++l) {
    const LlmLayer& L = m.layers()[size_t(l)];

    // Attention: x += Wo · attn(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
    rms_norm(x, L.attn_norm, c.rms_eps, D, n, xb);
    matmul(L.wq, xb, n, q, pool);
    matmul(L.wk, xb, n, k, pool, {.same_x = true});  // Q's quantization of xb reused
    matmul(L.wv, xb, n, v, pool, {.same_x = true});
    if (L.bq) {
      add_bias(q, L.bq, q_dim, n);
      add_bias(k, L.bk, kv_dim, n);
      add_bias(v, L.bv, kv_dim, n);
    }
    for (int i = 0; i < n; ++i) {
      const float* cs = rope + i * rope_row;
      rope_apply(c.rope_type, q + i * q_dim, c.n_head, c.head_dim, c.n_rot, cs);
      rope_apply(c.rope_type, k + i * kv_dim, c.n_head_kv, c.head_dim, c.n_rot, cs);
    }
    cache.write(l, pos0, n, k, v);

    AttentionArgs a;
    a.q = q;
    a.q_stride = q_dim;
    cache.attention_view(l, a);  // K/V rows in the cache's storage type (F32, F16 or INT8)
    a.out = att;
    a.out_stride = q_dim;
    a.n_q = n;
    a.pos0 = pos0;
    a.n_head = c.n_head;
    a.n_head_kv = c.n_head_kv;
    a.head_dim = c.head_dim;
    a.scale = 1.0f / std::sqrt(float(c.head_dim));
    attention(a, pool);
    matmul(L.wo, att, n, proj, pool);
    add_inplace(x, proj, n * D);

    // Feed-forward (SwiGLU): x += W_down · (silu(W_gate·norm(x)) ⊙ W_up·norm(x))
    rms_norm(x, L.ffn_norm, c.rms_eps, D, n, xb);
    matmul(L.w_gate, xb, n, gate, pool);
    matmul(L.w_up, xb, n, up, pool, {.same_x = true});
    swiglu(gate, up, n * int64_t(c.n_ff));
    matmul(L.w_down, gate, n, proj, pool);
    add_inplace(x, proj, n * D);
  }
  cache.advance(n);
  if (logits == nullptr) return;

  // Logits: only the last position unless all are asked for.
  const int first = all_logits ? 0 : n - 1;
  const int n_out = n - first;
  rms_norm(x + first * D, m.output_norm(), c.rms_eps, D, n_out, xb);
  matmul(m.output(), xb, n_out, logits, pool);
}

}  // namespace edgevlm
