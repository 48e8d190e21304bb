#include "model/quantize.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <sys/stat.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/llm_arch.h"

namespace edgevlm {

// ---- GGUFStreamWriter ----

namespace {

constexpr uint32_t kGGUFMagic = 0x46554747;  // "GGUF"

void put(std::vector<uint8_t>& out, const void* p, size_t n) {
  out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
}
template <typename T>
void put_t(std::vector<uint8_t>& out, T x) {
  put(out, &x, sizeof x);
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put_t<uint64_t>(out, s.size());
  put(out, s.data(), s.size());
}

void put_array(std::vector<uint8_t>& out, const GGUFArray& a) {
  put_t<uint32_t>(out, uint32_t(a.elem_type));
  put_t<uint64_t>(out, a.size());
  if (a.elem_type == GGUFType::STRING) {
    for (const auto& s : a.strings) put_string(out, s);
  } else if (a.elem_type == GGUFType::ARRAY) {
    for (const auto& e : a.arrays) {
      EV_CHECK(e.arr != nullptr, "GGUF writer: nested array without contents");
      put_array(out, *e.arr);
    }
  } else {
    put(out, a.raw.data(), a.raw.size());
  }
}

void put_value(std::vector<uint8_t>& out, const GGUFValue& v) {
  switch (v.type) {
    case GGUFType::UINT8: put_t<uint8_t>(out, uint8_t(v.u)); break;
    case GGUFType::INT8: put_t<int8_t>(out, int8_t(v.i)); break;
    case GGUFType::UINT16: put_t<uint16_t>(out, uint16_t(v.u)); break;
    case GGUFType::INT16: put_t<int16_t>(out, int16_t(v.i)); break;
    case GGUFType::UINT32: put_t<uint32_t>(out, uint32_t(v.u)); break;
    case GGUFType::INT32: put_t<int32_t>(out, int32_t(v.i)); break;
    case GGUFType::FLOAT32: put_t<float>(out, float(v.f)); break;
    case GGUFType::BOOL: put_t<uint8_t>(out, v.b ? 1 : 0); break;
    case GGUFType::STRING: put_string(out, v.s); break;
    case GGUFType::ARRAY:
      EV_CHECK(v.arr != nullptr, "GGUF writer: array value without contents");
      put_array(out, *v.arr);
      break;
    case GGUFType::UINT64: put_t<uint64_t>(out, v.u); break;
    case GGUFType::INT64: put_t<int64_t>(out, v.i); break;
    case GGUFType::FLOAT64: put_t<double>(out, v.f); break;
    default: fail("GGUF writer: value of unknown type %u", unsigned(v.type));
  }
}

}  // namespace

GGUFStreamWriter::~GGUFStreamWriter() {
  if (f_) std::fclose(f_);
  if (!finished_ && !tmp_.empty()) std::remove(tmp_.c_str());
}

void GGUFStreamWriter::set(const std::string& key, GGUFValue v) {
  EV_CHECK(!f_, "GGUF writer: metadata set after begin()");
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GGUFStreamWriter::set_alignment(uint32_t a) {
  EV_CHECK(a != 0 && (a & (a - 1)) == 0, "GGUF alignment %u is not a power of two", a);
  alignment_ = a;
  set("general.alignment", GGUFValue::from_u32(a));
}

void GGUFStreamWriter::add_tensor_info(const std::string& name, GGMLType type, const std::vector<int64_t>& ne) {
  EV_CHECK(!f_, "GGUF writer: tensor '%s' declared after begin()", name.c_str());
  EV_CHECK(!ne.empty() && ne.size() <= 4, "tensor '%s': 1 to 4 dimensions, got %zu", name.c_str(), ne.size());
  EV_CHECK(type_block_elems(type) > 0, "tensor '%s': type %s has no known block size", name.c_str(),
           type_name(type).c_str());
  int64_t n = 1;
  for (int64_t d : ne) {
    EV_CHECK(d >= 1, "tensor '%s': dimension %lld", name.c_str(), (long long)d);
    n *= d;
  }
  EV_CHECK(ne[0] % int64_t(type_block_elems(type)) == 0, "tensor '%s': rows of %lld do not fill %s blocks",
           name.c_str(), (long long)ne[0], type_name(type).c_str());
  for (const auto& t : tensors_) EV_CHECK(t.name != name, "duplicate tensor name '%s'", name.c_str());
  tensors_.push_back({name, type, ne, row_bytes(type, ne[0]) * size_t(n / ne[0])});
}

std::vector<uint8_t> GGUFStreamWriter::header() const {
  std::vector<uint8_t> out;
  put_t<uint32_t>(out, kGGUFMagic);
  put_t<uint32_t>(out, 3);
  put_t<uint64_t>(out, tensors_.size());
  put_t<uint64_t>(out, kv_.size());
  for (const auto& [key, v] : kv_) {
    put_string(out, key);
    put_t<uint32_t>(out, uint32_t(v.type));
    put_value(out, v);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put_t<uint32_t>(out, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put_t<uint64_t>(out, uint64_t(d));
    put_t<uint32_t>(out, uint32_t(t.type));
    put_t<uint64_t>(out, offset);
    offset += padded(t.nbytes);
  }
  out.resize(size_t(padded(out.size())), 0);
  return out;
}

uint64_t GGUFStreamWriter::file_bytes() const {
  uint64_t n = header().size();
  for (const auto& t : tensors_) n += padded(t.nbytes);
  return n;
}

void GGUFStreamWriter::begin(const std::string& path) {
  EV_CHECK(!f_ && !finished_, "GGUF writer: begin() called twice");
  path_ = path;
  tmp_ = path + ".tmp";
  f_ = std::fopen(tmp_.c_str(), "wb");
  EV_CHECK(f_ != nullptr, "%s: cannot open for writing: %s", tmp_.c_str(), std::strerror(errno));
  const std::vector<uint8_t> h = header();
  EV_CHECK(std::fwrite(h.data(), 1, h.size(), f_) == h.size(), "%s: write failed: %s", tmp_.c_str(),
           std::strerror(errno));
  cur_ = 0;
  cur_done_ = 0;
}

void GGUFStreamWriter::write_data(const void* data, size_t n) {
  EV_CHECK(f_ != nullptr, "GGUF writer: write_data() before begin()");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  static const uint8_t zeros[256] = {};
  while (n > 0) {
    EV_CHECK(cur_ < tensors_.size(), "GGUF writer: more data than the %zu declared tensors hold", tensors_.size());
    const Info& t = tensors_[cur_];
    const size_t take = std::min(n, t.nbytes - cur_done_);
    EV_CHECK(std::fwrite(p, 1, take, f_) == take, "%s: write failed (disk full?): %s", tmp_.c_str(),
             std::strerror(errno));
    p += take;
    n -= take;
    cur_done_ += take;
    if (cur_done_ == t.nbytes) {
      size_t pad = size_t(padded(t.nbytes) - t.nbytes);
      while (pad > 0) {
        const size_t z = std::min(pad, sizeof zeros);
        EV_CHECK(std::fwrite(zeros, 1, z, f_) == z, "%s: write failed: %s", tmp_.c_str(), std::strerror(errno));
        pad -= z;
      }
      ++cur_;
      cur_done_ = 0;
    }
  }
}

void GGUFStreamWriter::finish() {
  EV_CHECK(f_ != nullptr, "GGUF writer: finish() before begin()");
  EV_CHECK(cur_ == tensors_.size(), "GGUF writer: tensor '%s' incomplete (%zu of %zu bytes written)",
           cur_ < tensors_.size() ? tensors_[cur_].name.c_str() : "?", cur_done_,
           cur_ < tensors_.size() ? tensors_[cur_].nbytes : size_t(0));
  const bool ok = std::fflush(f_) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  EV_CHECK(ok && closed, "%s: write failed (disk full?)", tmp_.c_str());
  EV_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, "%s: cannot rename into place: %s", path_.c_str(),
           std::strerror(errno));
  finished_ = true;
}

// ---- schemes ----

const char* quant_scheme_name(QuantScheme s) {
  switch (s) {
    case QuantScheme::BlueLM: return "bluelm";
    case QuantScheme::Q8_0: return "q8_0";
    case QuantScheme::Q4_0: return "q4_0";
    case QuantScheme::F16: return "f16";
    case QuantScheme::F32: return "f32";
    case QuantScheme::Q4_K_M: return "q4_k_m";
    case QuantScheme::Q5_K_M: return "q5_k_m";
    case QuantScheme::Q6_K: return "q6_k";
    case QuantScheme::Q3_K_M: return "q3_k_m";
    case QuantScheme::IQ4_XS: return "iq4_xs";
  }
  return "?";
}

QuantScheme parse_quant_scheme(const std::string& s) {
  for (QuantScheme q : {QuantScheme::BlueLM, QuantScheme::Q8_0, QuantScheme::Q4_0, QuantScheme::F16, QuantScheme::F32,
                        QuantScheme::Q4_K_M, QuantScheme::Q5_K_M, QuantScheme::Q6_K, QuantScheme::Q3_K_M,
                        QuantScheme::IQ4_XS})
    if (s == quant_scheme_name(q)) return q;
  fail("quantize: unknown scheme '%s' (bluelm, q8_0, q4_0, f16, f32, q4_k_m, q5_k_m, q6_k, q3_k_m, iq4_xs)",
       s.c_str());
}

ModelFileKind detect_model_file_kind(const GGUFFile& f) {
  EV_CHECK(f.has("general.architecture"), "%s: no general.architecture key: not a model file", f.path().c_str());
  const std::string arch = f.get_string("general.architecture");
  if (llm_arch_supported(arch)) return ModelFileKind::Llm;
  if (arch == "clip") return ModelFileKind::Mmproj;
  fail("%s: architecture '%s' is neither a language model (%s) nor a vision file (clip)", f.path().c_str(),
       arch.c_str(), supported_llm_archs().c_str());
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors kept at F32 whatever the scheme: they are small and precision-critical.
bool keep_f32(const GGUFTensorInfo& t) {
  const std::string& n = t.name;
  int64_t dims = 0;
  for (int64_t d : t.ne) dims += d > 1;
  if (t.ne.size() == 1 || dims <= 1) return true;
  if (ends_with(n, ".bias")) return true;
  if (n.find("norm") != std::string::npos || n.find(".ln1.") != std::string::npos ||
      n.find(".ln2.") != std::string::npos || n.find("post_ln") != std::string::npos ||
      n.find("pre_ln") != std::string::npos)
    return true;
  if (n.find("position_embd") != std::string::npos) return true;
  if (ends_with(n, "shortconv.conv.weight")) return true;  // LFM2's taps: rows of 3 (llama-quantize keeps them)
  return false;
}

// Types quantize can read (floats and the block types): integer tensors are copied as they are.
bool is_numeric_type(GGMLType t) { return type_supported(t); }
bool is_block_type(GGMLType t) {
  return type_supported(t) && t != GGMLType::F32 && t != GGMLType::F16 && t != GGMLType::BF16;
}

bool is_k_scheme(QuantScheme s) {
  return s == QuantScheme::Q4_K_M || s == QuantScheme::Q5_K_M || s == QuantScheme::Q6_K ||
         s == QuantScheme::Q3_K_M || s == QuantScheme::IQ4_XS;
}

// The layer of a "blk.N." tensor, −1 for others.
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// llama-quantize's choice of layers that get more bits (attn_v, ffn_down): the first and last
// eighth, and every third layer between.
bool use_more_bits(int i_layer, int n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

// llama_tensor_get_type for the K-quant schemes on a dense decoder (not falcon, no experts, no
// imatrix), then its fallback for rows that do not fill the type's blocks.
GGMLType k_scheme_type(QuantScheme s, const GGUFTensorInfo& t, const QuantModelInfo& m) {
  const std::string& n = t.name;
  int64_t dims = 0;
  for (int64_t d : t.ne) dims += d > 1;
  // What llama-quantize leaves alone: 1-D tensors, norms, position embeddings.
  if (!ends_with(n, "weight") || t.ne.size() < 2 || dims < 2 || n.find("norm") != std::string::npos ||
      n.find("position_embd") != std::string::npos)
    return t.type;
  using Q = QuantScheme;
  const GGMLType base = s == Q::Q4_K_M ? GGMLType::Q4_K
                        : s == Q::Q5_K_M ? GGMLType::Q5_K
                        : s == Q::Q6_K   ? GGMLType::Q6_K
                        : s == Q::Q3_K_M ? GGMLType::Q3_K
                                         : GGMLType::IQ4_XS;
  const int64_t nx = t.ne[0];
  const int layer = layer_of(n), n_layer = m.n_layer;
  GGMLType to = base;
  if (n == "output.weight" || (m.tied && n == "token_embd.weight")) {
    to = nx % kQK_K != 0 ? GGMLType::Q8_0 : GGMLType::Q6_K;
  } else if (n.find("attn_v.weight") != std::string::npos) {
    if ((s == Q::Q4_K_M || s == Q::Q5_K_M) && use_more_bits(layer, n_layer)) to = GGMLType::Q6_K;
    if (s == Q::Q3_K_M) to = layer < 2 ? GGMLType::Q5_K : GGMLType::Q4_K;
    if (s == Q::IQ4_XS && m.n_gqa >= 4) to = GGMLType::Q5_K;
  } else if (n.find("ffn_down") != std::string::npos) {
    if ((s == Q::Q4_K_M || s == Q::Q5_K_M) && use_more_bits(layer, n_layer)) to = GGMLType::Q6_K;
    if (s == Q::Q3_K_M) to = layer < n_layer / 16 ? GGMLType::Q5_K : GGMLType::Q4_K;
    if (s == Q::IQ4_XS && layer < n_layer / 8) to = GGMLType::Q5_K;
  } else if (n.find("attn_output.weight") != std::string::npos) {
    if (s == Q::Q3_K_M) to = GGMLType::Q4_K;
  } else if (n.find("attn_qkv.weight") != std::string::npos) {
    if (s == Q::Q4_K_M) to = GGMLType::Q5_K;
    if (s == Q::Q5_K_M) to = GGMLType::Q6_K;
    if (s == Q::Q3_K_M) to = GGMLType::Q4_K;
  }
  if (nx % int64_t(type_block_elems(to)) != 0) {
    switch (to) {
      case GGMLType::Q3_K: to = GGMLType::Q4_0; break;
      case GGMLType::Q4_K: to = GGMLType::Q5_0; break;
      case GGMLType::Q5_K: to = GGMLType::Q5_1; break;
      case GGMLType::IQ4_XS: to = GGMLType::IQ4_NL; break;
      default: to = GGMLType::Q8_0; break;  // Q6_K, and output.weight's Q8_0
    }
    if (nx % kQK != 0) to = GGMLType::F16;
  }
  return to;
}

}  // namespace

GGMLType quant_target_type(QuantScheme s, ModelFileKind kind, const GGUFTensorInfo& t, const QuantModelInfo& m) {
  if (!is_numeric_type(t.type)) return t.type;  // integer types: copied as they are
  if (is_k_scheme(s)) {
    EV_CHECK(kind == ModelFileKind::Llm, "quantize: scheme %s is for language-model files, not vision (clip) files",
             quant_scheme_name(s));
    return k_scheme_type(s, t, m);
  }
  if (s == QuantScheme::F32 || keep_f32(t)) return GGMLType::F32;
  if (s == QuantScheme::F16) return GGMLType::F16;
  GGMLType want;
  if (s == QuantScheme::Q8_0) {
    want = GGMLType::Q8_0;
  } else if (s == QuantScheme::Q4_0) {
    want = GGMLType::Q4_0;
  } else if (kind == ModelFileKind::Mmproj) {
    want = GGMLType::Q8_0;
  } else {
    const bool edge = t.name == "token_embd.weight" || t.name == "output.weight";
    want = edge ? GGMLType::Q8_0 : GGMLType::Q4_0;
  }
  if (t.ne[0] % kQK != 0) return t.type == GGMLType::F32 ? GGMLType::F32 : GGMLType::F16;
  return want;
}

uint32_t quant_file_type(QuantScheme s, ModelFileKind kind) {
  switch (s) {  // LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0
    case QuantScheme::F32: return 0;
    case QuantScheme::F16: return 1;
    case QuantScheme::Q4_0: return 2;
    case QuantScheme::Q8_0: return 7;
    case QuantScheme::BlueLM: return kind == ModelFileKind::Mmproj ? 7 : 2;
    case QuantScheme::Q4_K_M: return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M
    case QuantScheme::Q5_K_M: return 17;  // LLAMA_FTYPE_MOSTLY_Q5_K_M
    case QuantScheme::Q6_K: return 18;    // LLAMA_FTYPE_MOSTLY_Q6_K
    case QuantScheme::Q3_K_M: return 12;  // LLAMA_FTYPE_MOSTLY_Q3_K_M
    case QuantScheme::IQ4_XS: return 30;  // LLAMA_FTYPE_MOSTLY_IQ4_XS
  }
  return 0;
}

QuantizeReport quantize_gguf(const std::string& in, const std::string& out, QuantScheme scheme,
                             const std::function<void(const QuantizeProgress&)>& progress, int n_threads,
                             bool allow_requantize) {
  EV_CHECK(!out.empty(), "quantize: no output path");
  {
    struct stat a {}, b {};
    const bool same = in == out || (stat(in.c_str(), &a) == 0 && stat(out.c_str(), &b) == 0 &&
                                    a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    EV_CHECK(!same, "quantize: the output %s is the input file; write to another path", out.c_str());
  }
  auto f = GGUFFile::open(in);
  QuantizeReport rep;
  rep.kind = detect_model_file_kind(*f);
  rep.in_bytes = f->file_size();

  GGUFStreamWriter w;
  if (f->alignment() != 32) w.set_alignment(uint32_t(f->alignment()));
  for (const auto& [key, value] : f->metadata()) w.set(key, value);
  w.set("general.file_type", GGUFValue::from_u32(quant_file_type(scheme, rep.kind)));

  // What the K-quant schemes' choices depend on: depth, tied output, heads per KV head.
  QuantModelInfo info;
  for (const GGUFTensorInfo& t : f->tensors()) info.n_layer = std::max(info.n_layer, layer_of(t.name) + 1);
  info.tied = f->find_tensor("output.weight") == nullptr;
  if (rep.kind == ModelFileKind::Llm) {
    const std::string a = f->get_string("general.architecture") + ".attention.";
    // head_count_kv is an integer, or per layer (LFM2: 0 for its convolution layers), where
    // the rules use the first attention layer's count.
    int64_t n_kv = 0;
    if (const GGUFValue* kv = f->find(a + "head_count_kv"); kv && kv->type == GGUFType::ARRAY) {
      for (int64_t v : f->get_ints(a + "head_count_kv"))
        if (v > 0) {
          n_kv = v;
          break;
        }
    } else if (kv) {
      n_kv = f->get_int(a + "head_count_kv");
    }
    if (f->has(a + "head_count") && n_kv > 0 && f->find(a + "head_count")->type != GGUFType::ARRAY)
      info.n_gqa = int(f->get_int(a + "head_count") / n_kv);
  }

  std::vector<GGMLType> targets;
  std::map<GGMLType, int> counts;
  bool any_quant = false;
  for (const GGUFTensorInfo& t : f->tensors()) {
    const GGMLType to = quant_target_type(scheme, rep.kind, t, info);
    if (to != t.type) {
      EV_CHECK(type_supported(t.type), "%s: tensor '%s' is stored as %s, which quantize cannot convert",
               f->path().c_str(), t.name.c_str(), type_name(t.type).c_str());
      EV_CHECK(allow_requantize || !is_block_type(t.type),
               "%s: tensor '%s' is already quantized (%s); converting it to %s loses more than quantizing the "
               "float original would: pass --allow-requantize to do it anyway",
               f->path().c_str(), t.name.c_str(), type_name(t.type).c_str(), type_name(to).c_str());
    }
    targets.push_back(to);
    counts[to]++;
    any_quant |= is_block_type(to);
    w.add_tensor_info(t.name, to, t.ne);
  }
  if (any_quant) w.set("general.quantization_version", GGUFValue::from_u32(2));

  uint64_t total = 0;
  for (size_t i = 0; i < w.n_tensors(); ++i) total += w.tensor_bytes(i);
  w.begin(out);
  uint64_t done = 0;
  ThreadPool pool(n_threads > 0 ? n_threads : ThreadPool::hardware_threads());
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const GGUFTensorInfo& t = f->tensors()[i];
    const GGMLType to = targets[i];
    if (progress) progress({i, f->tensors().size(), &t, to, done, total});
    if (to == t.type) {
      w.write_data(t.data, t.nbytes);  // bit-exact copy
    } else {
      const int64_t n = t.ne[0], rows = t.rows();
      const size_t in_rb = row_bytes(t.type, n), out_rb = row_bytes(to, n);
      // Batches of rows of about 4 MB per write, converted in parallel.
      const int64_t batch = std::max<int64_t>(1, int64_t((4u << 20) / std::max<size_t>(out_rb, 1)));
      buf.resize(size_t(std::min(batch, rows)) * out_rb);
      for (int64_t r0 = 0; r0 < rows; r0 += batch) {
        const int64_t r1 = std::min(rows, r0 + batch);
        pool.parallel_for(r1 - r0, [&](int64_t b, int64_t e) {
          std::vector<float> rowf(static_cast<size_t>(n));
          for (int64_t r = r0 + b; r < r0 + e; ++r) {
            dequantize_row(t.type, t.data + size_t(r) * in_rb, rowf.data(), n);
            quantize_row(to, rowf.data(), buf.data() + size_t(r - r0) * out_rb, n);
          }
        });
        w.write_data(buf.data(), size_t(r1 - r0) * out_rb);
      }
    }
    done += w.tensor_bytes(i);
  }
  w.finish();
  rep.out_bytes = w.file_bytes();
  for (const auto& [t, c] : counts) rep.type_counts.emplace_back(t, c);
  return rep;
}

}  // namespace edgevlm
