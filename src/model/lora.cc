#include "model/lora.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "formats/quant.h"

namespace edgevlm {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// The string value of a metadata key, or "" when absent; an error when it is not a string.
std::string string_key(const GGUFFile& f, const std::string& key) {
  const GGUFValue* v = f.find(key);
  if (!v) return "";
  EV_CHECK(v->type == GGUFType::STRING, "%s: metadata '%s' is a %s, not a string", f.path().c_str(), key.c_str(),
           gguf_type_name(v->type));
  return v->s;
}

bool adapter_type_ok(GGMLType t) {
  return t == GGMLType::F32 || t == GGMLType::F16 || t == GGMLType::BF16 || t == GGMLType::Q8_0;
}

// A 2-D tensor's dimensions (trailing 1s beyond the second are allowed), or an error.
void check_2d(const GGUFFile& f, const GGUFTensorInfo& t) {
  bool ok = t.ne.size() >= 2;
  for (size_t i = 2; ok && i < t.ne.size(); ++i) ok = t.ne[i] == 1;
  EV_CHECK(ok, "%s: LoRA tensor '%s' has shape %s, expected 2 dimensions", f.path().c_str(), t.name.c_str(),
           shape_str(t.ne).c_str());
  EV_CHECK(adapter_type_ok(t.type), "%s: LoRA tensor '%s' has type %s; adapters are f32, f16, bf16 or q8_0",
           f.path().c_str(), t.name.c_str(), type_name(t.type).c_str());
  EV_CHECK(t.ne[0] >= 1 && t.ne[1] >= 1, "%s: LoRA tensor '%s' has shape %s: rank 0 or an empty dimension",
           f.path().c_str(), t.name.c_str(), shape_str(t.ne).c_str());
  EV_CHECK(t.ne[0] % int64_t(type_block_elems(t.type)) == 0,
           "%s: LoRA tensor '%s' rows of %lld elements do not fill %s blocks", f.path().c_str(), t.name.c_str(),
           (long long)t.ne[0], type_name(t.type).c_str());
  EV_CHECK(t.data != nullptr && t.nbytes >= row_bytes(t.type, t.ne[0]) * size_t(t.ne[1]),
           "%s: LoRA tensor '%s' data is truncated", f.path().c_str(), t.name.c_str());
}

}  // namespace

LoraAdapterSpec parse_lora_spec(const std::string& s) {
  LoraAdapterSpec spec;
  spec.path = s;
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size()) {
    const std::string tail = s.substr(colon + 1);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(tail.c_str(), &end);
    if (end != tail.c_str() && *end == '\0') {
      EV_CHECK(std::isfinite(v) && errno != ERANGE && std::fabs(v) < 1e6,
               "--lora %s: the scale '%s' is not a finite number below 1e6 in magnitude", s.c_str(), tail.c_str());
      spec.path = s.substr(0, colon);
      spec.scale = float(v);
    }
  }
  EV_CHECK(!spec.path.empty(), "--lora '%s': no adapter file", s.c_str());
  return spec;
}

std::unique_ptr<LoraAdapter> LoraAdapter::open(const std::string& path, float scale) {
  return from_file(GGUFFile::open(path), scale);
}

std::unique_ptr<LoraAdapter> LoraAdapter::from_file(std::unique_ptr<GGUFFile> file, float scale) {
  std::unique_ptr<LoraAdapter> ad(new LoraAdapter());
  const GGUFFile& f = *file;
  const char* p = f.path().c_str();
  EV_CHECK(std::isfinite(scale), "%s: the LoRA scale must be a finite number", p);
  const std::string gtype = string_key(f, "general.type");
  EV_CHECK(gtype == "adapter", "%s: general.type is %s, not 'adapter': not a LoRA adapter file", p,
           gtype.empty() ? "missing" : ("'" + gtype + "'").c_str());
  const std::string atype = string_key(f, "adapter.type");
  EV_CHECK(atype == "lora", "%s: adapter.type is %s, not 'lora'", p,
           atype.empty() ? "missing" : ("'" + atype + "'").c_str());
  ad->arch_ = string_key(f, "general.architecture");
  EV_CHECK(!ad->arch_.empty(), "%s: missing metadata key 'general.architecture'", p);
  if (const GGUFValue* a = f.find("adapter.lora.alpha")) {
    EV_CHECK(a->is_number(), "%s: metadata 'adapter.lora.alpha' is a %s, not a number", p, gguf_type_name(a->type));
    const double alpha = a->as_double();
    EV_CHECK(std::isfinite(alpha) && std::fabs(alpha) < 1e9, "%s: metadata 'adapter.lora.alpha' = %g is not finite",
             p, alpha);
    ad->alpha_ = float(alpha);
  }
  ad->scale_ = scale;

  // Pair every <target>.lora_a with its <target>.lora_b, in name order.
  std::map<std::string, Pair> pairs;
  for (const GGUFTensorInfo& t : f.tensors()) {
    const bool is_a = ends_with(t.name, ".lora_a"), is_b = ends_with(t.name, ".lora_b");
    if (!is_a && !is_b) {
      // llama.cpp skips these too (norm vectors some trainers save beside the pairs).
      if (ends_with(t.name, "_norm.weight")) continue;
      fail("%s: tensor '%s' is neither a .lora_a nor a .lora_b tensor", p, t.name.c_str());
    }
    const std::string target = t.name.substr(0, t.name.size() - 7);
    EV_CHECK(!target.empty(), "%s: tensor '%s' names no target tensor", p, t.name.c_str());
    Pair& pr = pairs[target];
    pr.target = target;
    (is_a ? pr.a : pr.b) = &t;
  }
  EV_CHECK(!pairs.empty(), "%s: the adapter has no .lora_a/.lora_b tensors", p);
  for (auto& [target, pr] : pairs) {
    EV_CHECK(pr.a && pr.b, "%s: '%s.%s' has no matching '%s.%s'", p, target.c_str(), pr.a ? "lora_a" : "lora_b",
             target.c_str(), pr.a ? "lora_b" : "lora_a");
    check_2d(f, *pr.a);
    check_2d(f, *pr.b);
    pr.n_in = pr.a->ne[0];
    pr.rank = pr.a->ne[1];
    pr.n_out = pr.b->ne[1];
    EV_CHECK(pr.b->ne[0] == pr.rank,
             "%s: '%s' has rank %lld (shape %s) but '%s' has %lld columns (shape %s): lora_a must be [n_in, r] and "
             "lora_b [r, n_out]",
             p, pr.a->name.c_str(), (long long)pr.rank, shape_str(pr.a->ne).c_str(), pr.b->name.c_str(),
             (long long)pr.b->ne[0], shape_str(pr.b->ne).c_str());
    // Row by row: a copy of the whole tensor in F32 would be up to 3.8 times its bytes (Q8_0).
    for (const GGUFTensorInfo* t : {pr.a, pr.b}) {
      const int64_t row = t->ne[0], rows = t->rows();
      std::vector<float> v(static_cast<size_t>(row));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(t->type, t->data + size_t(r) * row_bytes(t->type, row), v.data(), row);
        const auto bad = std::find_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
        EV_CHECK(bad == v.end(), "%s: LoRA tensor '%s' has a non-finite value (%g) at element %lld", p,
                 t->name.c_str(), bad == v.end() ? 0.0 : double(*bad), (long long)(r * row + (bad - v.begin())));
      }
    }
    // llama.cpp: s = scale · alpha / rank, or the scale alone when alpha is 0.
    pr.scale = ad->alpha_ != 0 ? scale * ad->alpha_ / float(pr.rank) : scale;
    ad->pairs_.push_back(pr);
  }
  ad->file_ = std::move(file);
  return ad;
}

std::vector<float> LoraAdapter::values(const GGUFTensorInfo& t) {
  const int64_t row = t.ne[0], rows = t.rows();
  std::vector<float> v(size_t(row * rows));
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(t.type, t.data + size_t(r) * row_bytes(t.type, row), v.data() + r * row, row);
  return v;
}

LoraWeights::LoraWeights(const std::vector<const LoraAdapter*>& adapters, const std::vector<LoraTarget>& targets,
                         const GGUFFile& base, const std::string& arch, LoraMode mode, ThreadPool* pool) {
  std::unique_ptr<ThreadPool> own_pool;
  if (!pool) pool = (own_pool = std::make_unique<ThreadPool>(1)).get();
  std::map<std::string, std::vector<const LoraTarget*>> by_name;
  for (const LoraTarget& t : targets) by_name[t.tensor].push_back(&t);

  // What each of the model's matrices gets: (adapter, pair) in the order given.
  struct Use {
    const LoraAdapter* ad;
    const LoraAdapter::Pair* pair;
  };
  std::vector<std::pair<const LoraTarget*, std::vector<Use>>> uses;
  std::map<const LoraTarget*, size_t> use_index;
  for (const LoraAdapter* ad : adapters) {
    const char* p = ad->path().c_str();
    EV_CHECK(ad->arch() == arch, "%s: the adapter is for architecture '%s' but the model %s is '%s'", p,
             ad->arch().c_str(), base.path().c_str(), arch.c_str());
    for (const LoraAdapter::Pair& pr : ad->pairs()) {
      auto it = by_name.find(pr.target);
      if (it == by_name.end()) {
        const GGUFTensorInfo* t = base.find_tensor(pr.target);
        EV_CHECK(t != nullptr, "%s: tensor '%s.lora_a' targets '%s', which the model %s does not have (an adapter "
                 "for another model?)", p, pr.target.c_str(), pr.target.c_str(), base.path().c_str());
        fail("%s: tensor '%s.lora_a' targets '%s', which is not a matrix the model multiplies (LoRA is supported "
             "on the decoder's attention, feed-forward, convolution projections and output.weight, and on the ViT's "
             "and projector's matrices)",
             p, pr.target.c_str(), pr.target.c_str());
      }
      const LoraTarget& t0 = *it->second.front();
      EV_CHECK(pr.n_in == t0.w->n_in && pr.n_out == t0.tensor_rows,
               "%s: '%s' is [%lld, %lld] after its LoRA product (lora_a %s, lora_b %s) but the model's '%s' is "
               "[%lld, %lld] (an adapter for another model?)",
               p, pr.target.c_str(), (long long)pr.n_in, (long long)pr.n_out, shape_str(pr.a->ne).c_str(),
               shape_str(pr.b->ne).c_str(), pr.target.c_str(), (long long)t0.w->n_in, (long long)t0.tensor_rows);
      // A rank above the matrix's smaller side is no low-rank update (B·A could be written with a
      // smaller one), and it is what a file would declare to make the terms below outgrow the
      // model: refused.
      EV_CHECK(pr.rank <= std::min(pr.n_in, pr.n_out),
               "%s: '%s' has rank %lld, above the smaller side %lld of the model's '%s' [%lld, %lld]: not a low-rank "
               "adapter",
               p, pr.a->name.c_str(), (long long)pr.rank, (long long)std::min(pr.n_in, pr.n_out), pr.target.c_str(),
               (long long)pr.n_in, (long long)pr.n_out);
      if (ad->user_scale() == 0) continue;  // validated, contributes nothing (llama.cpp drops it too)
      for (const LoraTarget* t : it->second) {
        auto [ui, fresh] = use_index.emplace(t, uses.size());
        if (fresh) uses.push_back({t, {}});
        uses[ui->second].second.push_back({ad, &pr});
      }
    }
  }

  for (auto& [t, list] : uses) {
    WeightMatrix& w = *t->w;
    const int64_t n_in = w.n_in, n_out = w.n_out;
    int64_t rank = 0;
    for (const Use& u : list) rank += u.pair->rank;
    // A: the adapters' A stacked (rank rows of n_in); B: this matrix's rows of each B, side by
    // side and scaled (n_out rows of rank).
    std::vector<float> a(size_t(rank * n_in)), b(size_t(n_out * rank));
    int64_t k0 = 0;
    // Dequantized row by row into place (no F32 copy of the whole tensors on the side).
    std::vector<float> brow;
    for (const Use& u : list) {
      const int64_t r = u.pair->rank;
      const GGUFTensorInfo& ta = *u.pair->a;
      const GGUFTensorInfo& tb = *u.pair->b;
      for (int64_t k = 0; k < r; ++k)
        dequantize_row(ta.type, ta.data + size_t(k) * row_bytes(ta.type, n_in), a.data() + (k0 + k) * n_in, n_in);
      brow.resize(size_t(r));
      for (int64_t o = 0; o < n_out; ++o) {
        dequantize_row(tb.type, tb.data + size_t(t->first_row + o) * row_bytes(tb.type, r), brow.data(), r);
        for (int64_t k = 0; k < r; ++k) b[size_t(o * rank + k0 + k)] = u.pair->scale * brow[size_t(k)];
      }
      k0 += r;
    }
    if (mode == LoraMode::Auto && w.type == GGMLType::F32) {
      // W' = W + B·A, row o of B·A being Σ_k B[o,k]·A[k,:]: a product of the transposed A (n_in
      // rows of rank) with the rows of B, added onto a copy of W.
      std::vector<float> merged(size_t(n_out * n_in));
      for (int64_t o = 0; o < n_out; ++o)
        dequantize_row(w.type, w.data + size_t(o) * w.row_stride, merged.data() + o * n_in, n_in);
      std::vector<float> at(size_t(n_in * rank));
      for (int64_t k = 0; k < rank; ++k)
        for (int64_t i = 0; i < n_in; ++i) at[size_t(i * rank + k)] = a[size_t(k * n_in + i)];
      matmul(WeightMatrix::from_data(GGMLType::F32, at.data(), rank, n_in), b.data(), n_out, merged.data(), *pool,
             {.accumulate = true});
      merged_.push_back(std::move(merged));
      w = WeightMatrix::from_data(GGMLType::F32, merged_.back().data(), n_in, n_out);
      ++n_merged_;
    } else {
      LoraDelta& d = deltas_[&w];
      d.a = std::move(a);
      d.b = std::move(b);
      d.wa = WeightMatrix::from_data(GGMLType::F32, d.a.data(), n_in, rank);
      d.wb = WeightMatrix::from_data(GGMLType::F32, d.b.data(), rank, n_out);
    }
  }
}

void matmul_lora(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                 const LoraWeights* lora, const MatmulOut& out) {
  matmul(w, x, n_rows, y, pool, out);
  if (!lora) return;
  if (const LoraDelta* d = lora->delta(w)) {
    EV_CHECK(out.ldy == 0 || out.ldy == w.n_out, "matmul: a LoRA term needs packed output rows (ldy %lld, %lld outputs)",
             (long long)out.ldy, (long long)w.n_out);
    lora_delta_add(*d, x, n_rows, y, pool);
  }
}

void lora_delta_add(const LoraDelta& d, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  thread_local std::vector<float> ax;
  const int64_t rank = d.wa.n_out;
  if (ax.size() < size_t(n_rows * rank)) ax.resize(size_t(n_rows * rank));
  matmul(d.wa, x, n_rows, ax.data(), pool);
  matmul(d.wb, ax.data(), n_rows, y, pool, {.accumulate = true});
}

}  // namespace edgevlm
