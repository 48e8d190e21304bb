#include "vision/mmproj.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/pages.h"
#include "ops/matmul.h"
#include "vision/family_gemma3.h"
#include "vision/family_idefics3.h"
#include "vision/family_internvl.h"
#include "vision/family_lfm2.h"
#include "vision/family_qwen2vl.h"

namespace edgevlm {

const char* projector_type_name(ProjectorType t) {
  switch (t) {
    case ProjectorType::Lfm2: return "lfm2";
    case ProjectorType::Idefics3: return "idefics3";
    case ProjectorType::InternVL: return "internvl";
    case ProjectorType::Gemma3: return "gemma3";
    case ProjectorType::Qwen2VL: return "qwen2vl_merger";
    case ProjectorType::Qwen25VL: return "qwen2.5vl_merger";
  }
  return "?";
}

namespace {

constexpr const char* kSupportedProjectors = "lfm2, idefics3, internvl, gemma3, qwen2vl_merger, qwen2.5vl_merger";

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Reads tensors by name and checks them against the shapes the config implies.
class Reader {
 public:
  Reader(const GGUFFile& f, size_t& bytes) : f_(f), bytes_(bytes) {}

  const GGUFTensorInfo* find(const std::string& name) const { return f_.find_tensor(name); }

  const GGUFTensorInfo& get(const std::string& name, const std::vector<int64_t>& ne) {
    const GGUFTensorInfo* t = f_.find_tensor(name);
    if (!t) fail("mmproj '%s': tensor '%s' is missing", f_.path().c_str(), name.c_str());
    if (t->ne != ne)
      fail("mmproj '%s': tensor '%s' has shape %s, expected %s", f_.path().c_str(), name.c_str(),
           shape_str(t->ne).c_str(), shape_str(ne).c_str());
    bytes_ += t->nbytes;
    return *t;
  }

  // 1-D tensor of n values, converted to F32.
  std::vector<float> vec(const std::string& name, int64_t n) {
    const GGUFTensorInfo& t = get(name, {n});
    return to_f32(t);
  }
  std::vector<float> vec_opt(const std::string& name, int64_t n) {
    return find(name) ? vec(name, n) : std::vector<float>{};
  }

  std::vector<float> to_f32(const GGUFTensorInfo& t) const {
    const int64_t n = t.n_elements();
    if (!type_supported(t.type) || n % int64_t(type_block_elems(t.type)) != 0)
      fail("mmproj '%s': tensor '%s' has type %s, which cannot be read here", f_.path().c_str(),
           t.name.c_str(), type_name(t.type).c_str());
    if (t.data == nullptr || t.nbytes < row_bytes(t.type, n))
      fail("mmproj '%s': tensor '%s': data is smaller than its shape needs", f_.path().c_str(), t.name.c_str());
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, out.data(), n);
    return out;
  }

  // 2-D matrix with ne = [n_in, n_out].
  WeightMatrix mat(const std::string& name, int64_t n_in, int64_t n_out) {
    const GGUFTensorInfo& t = get(name, {n_in, n_out});
    try {
      return WeightMatrix::from_tensor(t);
    } catch (const Error& e) {
      fail("mmproj '%s': %s", f_.path().c_str(), e.what());
    }
  }

 private:
  const GGUFFile& f_;
  size_t& bytes_;
};

// See MmprojModel::blocks: the down-projection as Q8_0 with its rows zero-padded to whole blocks.
void quantize_padded_down(VitBlock& b) {
  const WeightMatrix w = b.down;
  const int64_t n_in = (w.n_in + kQK - 1) / kQK * kQK;
  const size_t rs = row_bytes(GGMLType::Q8_0, n_in);
  auto q8 = std::make_unique_for_overwrite<uint8_t[]>(rs * size_t(w.n_out));  // every byte written below
  std::vector<float> row(size_t(n_in), 0.0f);
  for (int64_t o = 0; o < w.n_out; ++o) {
    dequantize_row(w.type, w.data + size_t(o) * w.row_stride, row.data(), w.n_in);
    quantize_row(GGMLType::Q8_0, row.data(), q8.get() + size_t(o) * rs, n_in);
  }
  release_file_pages(w.data, w.bytes());
  b.down = WeightMatrix::from_data(GGMLType::Q8_0, q8.get(), n_in, w.n_out);
  b.down_q8 = std::move(q8);
}

int positive_key(const GGUFFile& f, const std::string& key, int64_t max) {
  if (!f.has(key)) fail("mmproj '%s': key '%s' is missing", f.path().c_str(), key.c_str());
  const int64_t v = f.get_int(key);
  if (v < 1 || v > max)
    fail("mmproj '%s': key '%s' = %lld is out of range [1, %lld]", f.path().c_str(), key.c_str(),
         (long long)v, (long long)max);
  return int(v);
}

std::array<float, 3> rgb_key(const GGUFFile& f, const std::string& key, std::array<float, 3> fallback) {
  if (!f.has(key)) return fallback;
  std::vector<float> v = f.get_floats(key);
  if (v.size() != 3)
    fail("mmproj '%s': key '%s' has %zu values, expected 3 (R, G, B)", f.path().c_str(), key.c_str(), v.size());
  for (float x : v)
    if (!std::isfinite(x)) fail("mmproj '%s': key '%s' holds a non-finite value", f.path().c_str(), key.c_str());
  return {v[0], v[1], v[2]};
}

}  // namespace

std::unique_ptr<MmprojModel> MmprojModel::load(const GGUFFile& f, const MmprojLoadOptions& opt,
                                               const std::vector<const LoraAdapter*>& adapters, LoraMode mode) {
  EV_CHECK(opt.vit_compat.empty() || opt.vit_compat == "mtmd", "unknown ViT compatibility mode '%s' (mtmd or none)",
           opt.vit_compat.c_str());
  std::unique_ptr<MmprojModel> m(new MmprojModel());
  m->file_ = &f;
  VisionConfig& c = m->cfg_;
  const char* path = f.path().c_str();

  const std::string arch = f.get_string_or("general.architecture", "");
  if (arch != "clip")
    fail("mmproj '%s': general.architecture is '%s', expected 'clip' (is this the language model file?)",
         path, arch.c_str());
  if (!f.get_bool_or("clip.has_vision_encoder", true))
    fail("mmproj '%s': clip.has_vision_encoder is false: the file has no vision encoder", path);
  if (!f.has("clip.projector_type"))
    fail("mmproj '%s': key 'clip.projector_type' is missing (supported: %s)", path, kSupportedProjectors);
  const std::string ptype = f.get_string("clip.projector_type");
  if (ptype == "lfm2") {
    c.projector = ProjectorType::Lfm2;
  } else if (ptype == "idefics3") {
    c.projector = ProjectorType::Idefics3;
  } else if (ptype == "internvl") {
    c.projector = ProjectorType::InternVL;
  } else if (ptype == "gemma3") {
    c.projector = ProjectorType::Gemma3;
  } else if (ptype == "qwen2vl_merger") {
    c.projector = ProjectorType::Qwen2VL;
  } else if (ptype == "qwen2.5vl_merger") {
    c.projector = ProjectorType::Qwen25VL;
  } else {
    fail("mmproj '%s': clip.projector_type '%s' is not supported (supported: %s)", path, ptype.c_str(),
         kSupportedProjectors);
  }
  const bool qwen = c.projector == ProjectorType::Qwen2VL || c.projector == ProjectorType::Qwen25VL;
  // The SigLIP families' MLP is GELU (tanh form, as ggml_gelu); other activations would silently
  // differ. (Qwen2-VL's files choose theirs: family_qwen2vl.h.)
  if (!qwen && !f.get_bool_or("clip.use_gelu", true))
    fail("mmproj '%s': clip.use_gelu is false; only GELU vision encoders are supported", path);
  if (!qwen && f.get_bool_or("clip.use_silu", false))
    fail("mmproj '%s': clip.use_silu is set; only GELU vision encoders are supported", path);

  c.image_size = positive_key(f, "clip.vision.image_size", 8192);
  c.patch_size = positive_key(f, "clip.vision.patch_size", c.image_size);
  c.n_embd = positive_key(f, "clip.vision.embedding_length", 1 << 16);
  c.n_ff = positive_key(f, "clip.vision.feed_forward_length", 1 << 18);
  c.n_layer = positive_key(f, "clip.vision.block_count", 1024);
  c.n_head = positive_key(f, "clip.vision.attention.head_count", c.n_embd);
  c.eps = float(f.get_float_or("clip.vision.attention.layer_norm_epsilon", 1e-6));
  c.scale_factor = f.has("clip.vision.projector.scale_factor")
                       ? positive_key(f, "clip.vision.projector.scale_factor", 64)
                       : c.projector == ProjectorType::Gemma3 ? kGemma3PoolSize : 2;
  c.proj_norm_eps = float(f.get_float_or("edgevlm.projector.input_norm_epsilon", 1e-5));
  if (c.n_embd % c.n_head != 0)
    fail("mmproj '%s': clip.vision.embedding_length %d is not a multiple of the head count %d", path, c.n_embd,
         c.n_head);
  // Attention over a tile costs patches² per layer: a file of 1-pixel patches on large tiles would
  // run for hours. Real encoders use at most 4096 (Gemma 3: 896 px / 14).
  if (c.n_patches() > kMaxPatchesPerTile)
    fail("mmproj '%s': %d x %d patches per tile (image size %d, patch size %d) is more than the %d this engine "
         "accepts",
         path, c.patches_per_side(), c.patches_per_side(), c.image_size, c.patch_size, kMaxPatchesPerTile);
  if (c.scale_factor > c.patches_per_side())
    fail("mmproj '%s': clip.vision.projector.scale_factor %d exceeds the %d patches per tile side", path,
         c.scale_factor, c.patches_per_side());
  if (!(c.eps > 0 && c.eps < 1) || !(c.proj_norm_eps > 0 && c.proj_norm_eps < 1))
    fail("mmproj '%s': a layer-norm epsilon is out of range (0, 1)", path);
  c.image_mean = rgb_key(f, "clip.vision.image_mean", c.image_mean);
  c.image_std = rgb_key(f, "clip.vision.image_std", c.image_std);
  // Real models normalise pixels in [0, 1] by means near 0.5 and deviations of 0.2-0.5; a value far
  // outside is a broken file (a mean of -2.6e33 once overflowed the padding colour derived from it).
  for (float m : c.image_mean)
    if (!(m >= -1 && m <= 2)) fail("mmproj '%s': clip.vision.image_mean %g is outside [-1, 2]", path, double(m));
  for (float s : c.image_std)
    if (!(s > 0 && s <= 10)) fail("mmproj '%s': clip.vision.image_std must be positive and at most 10, is %g", path, double(s));

  c.tiling_policy = f.get_string_or("edgevlm.tiling.policy", c.tiling_policy);
  if (c.tiling_policy != "relaxed" && c.tiling_policy != "llava_next" && c.tiling_policy != "llava-next" &&
      c.tiling_policy != "internvl" && c.tiling_policy != "single" && c.tiling_policy != "idefics3")
    fail("mmproj '%s': edgevlm.tiling.policy '%s' is unknown (relaxed, llava_next, internvl, single, idefics3)", path,
         c.tiling_policy.c_str());
  c.tiling_alpha = float(f.get_float_or("edgevlm.tiling.alpha", c.tiling_alpha));
  if (!(c.tiling_alpha >= 0 && c.tiling_alpha < 10))
    fail("mmproj '%s': edgevlm.tiling.alpha %g is out of range [0, 10)", path, double(c.tiling_alpha));
  c.max_tiles = f.has("edgevlm.tiling.max_tiles") ? positive_key(f, "edgevlm.tiling.max_tiles", 64) : c.max_tiles;
  c.thumbnail = f.get_bool_or("edgevlm.tiling.thumbnail", c.thumbnail);
  c.image_start = f.get_string_or("edgevlm.image.start_token", "");
  c.image_end = f.get_string_or("edgevlm.image.end_token", "");
  c.tile_separator = f.get_string_or("edgevlm.image.tile_separator", "");
  c.row_separator = f.get_string_or("edgevlm.image.row_separator", "");
  if (c.projector == ProjectorType::Idefics3) idefics3_configure(f, c);
  if (c.projector == ProjectorType::InternVL) internvl_configure(f, c);
  if (c.projector == ProjectorType::Lfm2) lfm2_configure(f, c);
  if (c.projector == ProjectorType::Gemma3) gemma3_configure(f, c);
  if (qwen) qwen2vl_configure(f, c);
  c.class_position_last = c.class_token && opt.vit_compat == "mtmd";

  // ---- tensors
  Reader r(f, m->weight_bytes_);
  const int P = c.patch_size, D = c.n_embd, F = c.n_ff, N = c.n_patches();
  if (r.find("v.patch_embd.weight.1")) {
    // Qwen2-VL's Conv3d over two frames, as two kernels; a still image is both frames, so the
    // patch embedding is the kernels' sum.
    EV_CHECK(qwen, "mmproj '%s': tensor 'v.patch_embd.weight.1' (a second temporal slice) is only read for "
             "Qwen2-VL files", path);
    std::vector<float> w0 = r.to_f32(r.get("v.patch_embd.weight", {P, P, 3, D}));
    const std::vector<float> w1 = r.to_f32(r.get("v.patch_embd.weight.1", {P, P, 3, D}));
    for (size_t i = 0; i < w0.size(); ++i) w0[i] += w1[i];
    m->patch_embd_data = std::move(w0);
    m->patch_embd = WeightMatrix::from_data(GGMLType::F32, m->patch_embd_data.data(), int64_t(3) * P * P, D);
  } else {
    const GGUFTensorInfo& t = r.get("v.patch_embd.weight", {P, P, 3, D});
    // The kernel is a matrix product over unfolded patches: row o holds (c, ky, kx) in order.
    try {
      m->patch_embd = WeightMatrix::from_data(t.type, t.data, int64_t(3) * P * P, D);
    } catch (const Error& e) {
      fail("mmproj '%s': tensor 'v.patch_embd.weight': %s", path, e.what());
    }
    if (t.data == nullptr || m->patch_embd.row_stride * size_t(D) > t.nbytes)
      fail("mmproj '%s': tensor 'v.patch_embd.weight': data is smaller than its shape needs", path);
  }
  m->patch_bias = r.vec_opt("v.patch_embd.bias", D);
  if (m->patch_bias.empty()) m->patch_bias.assign(size_t(D), 0.0f);
  if (c.class_token) {
    // The converter keeps the class token's shapes ([D, N + 1, 1] and [D, 1, 1]); 2-D is accepted too.
    const GGUFTensorInfo* pe = r.find("v.position_embd.weight");
    const bool three = pe && pe->ne.size() == 3;
    m->pos_embd = r.to_f32(r.get("v.position_embd.weight", three ? std::vector<int64_t>{D, N + 1, 1}
                                                                   : std::vector<int64_t>{D, N + 1}));
    const GGUFTensorInfo* ce = r.find("v.class_embd");
    if (!ce) fail("mmproj '%s': tensor 'v.class_embd' is missing (projector type internvl)", path);
    std::vector<int64_t> cne = {D};
    cne.resize(ce->ne.size(), 1);
    if (ce->ne.empty() || ce->ne[0] != D)
      fail("mmproj '%s': tensor 'v.class_embd' has shape %s, expected [%lld]", path, shape_str(ce->ne).c_str(),
           (long long)D);
    m->class_embd = r.to_f32(r.get("v.class_embd", cne));
  } else if (c.rope_2d) {
    if (r.find("v.position_embd.weight"))
      fail("mmproj '%s': tensor 'v.position_embd.weight' in a %s file, whose ViT has 2-D RoPE and no position table",
           path, ptype.c_str());
  } else {
    m->pos_embd = r.to_f32(r.get("v.position_embd.weight", {D, N}));
  }

  m->blocks.resize(size_t(c.n_layer));
  for (int i = 0; i < c.n_layer; ++i) {
    VitBlock& b = m->blocks[size_t(i)];
    const std::string p = "v.blk." + std::to_string(i) + ".";
    b.ln1_w = r.vec(p + "ln1.weight", D);
    b.ln2_w = r.vec(p + "ln2.weight", D);
    if (!c.rms_norms) {  // RMSNorm has no bias
      b.ln1_b = r.vec(p + "ln1.bias", D);
      b.ln2_b = r.vec(p + "ln2.bias", D);
    }
    b.q = r.mat(p + "attn_q.weight", D, D);
    b.k = r.mat(p + "attn_k.weight", D, D);
    b.v = r.mat(p + "attn_v.weight", D, D);
    b.o = r.mat(p + "attn_out.weight", D, D);
    b.up = r.mat(p + "ffn_up.weight", D, F);
    b.down = r.mat(p + "ffn_down.weight", F, D);
    b.q_b = r.vec_opt(p + "attn_q.bias", D);
    b.k_b = r.vec_opt(p + "attn_k.bias", D);
    b.v_b = r.vec_opt(p + "attn_v.bias", D);
    b.o_b = r.vec_opt(p + "attn_out.bias", D);
    b.up_b = r.vec_opt(p + "ffn_up.bias", F);
    b.down_b = r.vec_opt(p + "ffn_down.bias", D);
    if (c.vit_act == VitAct::SwiGLU) {
      b.gate = r.mat(p + "ffn_gate.weight", D, F);
      b.gate_b = r.vec_opt(p + "ffn_gate.bias", F);
    }
    b.ls1 = r.vec_opt(p + "ls1.weight", D);
    b.ls2 = r.vec_opt(p + "ls2.weight", D);
    if (r.find(p + "attn_q_norm.weight") || r.find(p + "attn_k_norm.weight"))
      fail("mmproj '%s': tensor '%sattn_q_norm.weight': ViTs with q/k norms (InternViT-6B) are not supported", path,
           p.c_str());
  }
  if (r.find("v.blk." + std::to_string(c.n_layer) + ".ln1.weight"))
    fail("mmproj '%s': the file has more ViT blocks than clip.vision.block_count = %d", path, c.n_layer);
  // A missing weight with its bias present (or the reverse) is a broken file, not "no post-LN".
  if (r.find("v.post_ln.weight") || r.find("v.post_ln.bias")) {
    m->post_ln_w = r.vec("v.post_ln.weight", D);
    if (!c.rms_norms) m->post_ln_b = r.vec("v.post_ln.bias", D);
  }

  const int64_t MD = c.merged_dim();
  // The matrices an adapter may target, by the file's tensor names: the ViT blocks' (below) and the
  // projector's, as it is read (gemma3's input projection is a transposed copy and the patch
  // embedding a convolution: neither is a target).
  std::vector<LoraTarget> targets;
  auto target = [&](const std::string& name, WeightMatrix& w) {
    if (w.data) targets.push_back({name, &w, 0, w.n_out});
  };
  // An MLP projector's two Linear layers (first: merged token → hidden, second: hidden → text
  // width, the widths read from their shapes, the latter checked against `declared` when > 0) into
  // mm_1 / mm_2; returns the text width.
  auto read_mlp = [&](const std::string& first, const std::string& second, int64_t declared = 0) {
    const GGUFTensorInfo* t1 = r.find(first + ".weight");
    const GGUFTensorInfo* t2 = r.find(second + ".weight");
    if (!t1 || !t2)
      fail("mmproj '%s': tensor '%s.weight' is missing (projector type %s)", path, (t1 ? second : first).c_str(),
           ptype.c_str());
    if (t1->ne.size() != 2 || t2->ne.size() != 2)
      fail("mmproj '%s': tensors '%s.weight' and '%s.weight' must be 2-D", path, first.c_str(), second.c_str());
    const int64_t hidden = t1->ne[1], out = t2->ne[1];
    if (out < 1 || out > (1 << 18)) fail("mmproj '%s': tensor '%s.weight' has %lld outputs", path, second.c_str(), (long long)out);
    if (declared > 0 && out != declared)
      fail("mmproj '%s': tensor '%s.weight' gives %lld outputs but clip.vision.projection_dim is %lld", path,
           second.c_str(), (long long)out, (long long)declared);
    m->mm_1 = r.mat(first + ".weight", MD, hidden);
    m->mm_1_b = r.vec_opt(first + ".bias", hidden);
    m->mm_2 = r.mat(second + ".weight", hidden, out);
    m->mm_2_b = r.vec_opt(second + ".bias", out);
    target(first + ".weight", m->mm_1);
    target(second + ".weight", m->mm_2);
    return int(out);
  };
  if (c.projector == ProjectorType::Lfm2) {
    if (r.find("mm.input_norm.weight") || r.find("mm.input_norm.bias")) {
      m->mm_norm_w = r.vec("mm.input_norm.weight", MD);
      m->mm_norm_b = r.vec("mm.input_norm.bias", MD);
    }
    c.projection_dim = read_mlp("mm.1", "mm.2",
                                f.has("clip.vision.projection_dim") ? positive_key(f, "clip.vision.projection_dim", 1 << 18) : 0);
  } else if (c.projector == ProjectorType::InternVL) {
    // mm.0 LayerNorm (eps 1e-5, PyTorch's default) → mm.1 → GELU → mm.3: the lfm2 path's arithmetic.
    m->mm_norm_w = r.vec("mm.model.mlp.0.weight", MD);
    m->mm_norm_b = r.vec("mm.model.mlp.0.bias", MD);
    c.projection_dim = read_mlp("mm.model.mlp.1", "mm.model.mlp.3");
    c.proj_norm_eps = 1e-5f;
  } else if (qwen) {
    // The merger: mm.0 → GELU → mm.2 (the lfm2 path's arithmetic without its norm).
    c.projection_dim = read_mlp("mm.0", "mm.2");
  } else if (c.projector == ProjectorType::Gemma3) {
    // RMSNorm (mm.soft_emb_norm, the converter adds Gemma's 1) → mm.input_projection, which the
    // converter keeps in PyTorch's [vit, text] order: [text, vit] in GGUF, transposed here once.
    if (c.patches_per_side() % c.scale_factor != 0)
      fail("mmproj '%s': %d patches per side are not a multiple of the %d x %d average pool", path,
           c.patches_per_side(), c.scale_factor, c.scale_factor);
    m->mm_soft_norm_w = r.vec("mm.soft_emb_norm.weight", D);
    const GGUFTensorInfo* t = r.find("mm.input_projection.weight");
    if (!t) fail("mmproj '%s': tensor 'mm.input_projection.weight' is missing (projector type gemma3)", path);
    if (t->ne.size() != 2 || t->ne[1] != D)
      fail("mmproj '%s': tensor 'mm.input_projection.weight' has shape %s, expected [projection_dim, %d]", path,
           shape_str(t->ne).c_str(), D);
    const int64_t out = t->ne[0];
    const std::vector<float> w = r.to_f32(r.get("mm.input_projection.weight", {out, D}));
    m->mm_input_proj_data.resize(w.size());
    for (int64_t k = 0; k < D; ++k)
      for (int64_t j = 0; j < out; ++j) m->mm_input_proj_data[size_t(j * D + k)] = w[size_t(k * out + j)];
    m->mm_input_proj = WeightMatrix::from_data(GGMLType::F32, m->mm_input_proj_data.data(), D, out);
    c.projection_dim = int(out);
  } else {
    const GGUFTensorInfo* t = r.find("mm.model.fc.weight");
    if (!t) fail("mmproj '%s': tensor 'mm.model.fc.weight' is missing (projector type idefics3)", path);
    if (t->ne.size() != 2)
      fail("mmproj '%s': tensor 'mm.model.fc.weight' has shape %s, expected [%lld, projection_dim]", path,
           shape_str(t->ne).c_str(), (long long)MD);
    int64_t out = t->ne[1];
    if (f.has("clip.vision.projection_dim")) out = positive_key(f, "clip.vision.projection_dim", 1 << 18);
    m->mm_fc = r.mat("mm.model.fc.weight", MD, out);
    m->mm_fc_b = r.vec_opt("mm.model.fc.bias", out);
    target("mm.model.fc.weight", m->mm_fc);
    c.projection_dim = int(out);
  }
  for (int i = 0; i < c.n_layer; ++i) {
    VitBlock& b = m->blocks[size_t(i)];
    const std::string p = "v.blk." + std::to_string(i) + ".";
    target(p + "attn_q.weight", b.q);
    target(p + "attn_k.weight", b.k);
    target(p + "attn_v.weight", b.v);
    target(p + "attn_out.weight", b.o);
    target(p + "ffn_up.weight", b.up);
    target(p + "ffn_down.weight", b.down);
    target(p + "ffn_gate.weight", b.gate);
  }
  std::set<std::string> adapted;  // the targets some adapter names
  for (const LoraAdapter* ad : adapters)
    for (const LoraAdapter::Pair& pr : ad->pairs()) adapted.insert(pr.target);
  {
    bool int8 = !m->blocks.empty();
    for (const VitBlock& b : m->blocks)
      for (const WeightMatrix* w : {&b.q, &b.k, &b.v, &b.o, &b.up}) int8 = int8 && w->type == GGMLType::Q8_0;
    std::vector<VitBlock*> todo;
    for (VitBlock& b : m->blocks) {
      // An adapted down-projection keeps the file's rows: its LoRA term reads unpadded inputs.
      const bool lora_down = adapted.count("v.blk." + std::to_string(&b - m->blocks.data()) + ".ffn_down.weight") > 0;
      if (int8 && !lora_down && b.down.n_in % kQK != 0 && type_block_elems(b.down.type) == 1) todo.push_back(&b);
    }
    // About a second of scalar work for so400m on one core: spread over the CPU's threads.
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::exception_ptr error;
    auto work = [&] {
      try {
        for (size_t j; (j = next++) < todo.size();) {
          try {
            quantize_padded_down(*todo[j]);
          } catch (const Error& e) {
            fail("mmproj '%s': tensor 'v.blk.%d.ffn_down.weight': %s", path, int(todo[j] - m->blocks.data()), e.what());
          }
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        error = std::current_exception();
      }
    };
    {
      std::vector<std::jthread> threads;
      const size_t n = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), todo.size());
      for (size_t t = 1; t < n; ++t) threads.emplace_back(work);
      work();
    }
    if (error) std::rethrow_exception(error);
  }
  if (!adapters.empty()) m->lora_ = std::make_unique<LoraWeights>(adapters, targets, f, "clip", mode, nullptr);
  return m;
}

// ---- random models

NamedTensor* RandomMmproj::find(const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void RandomMmproj::erase(const std::string& name) {
  std::erase_if(tensors, [&](const NamedTensor& t) { return t.name == name; });
}

GGUFWriter RandomMmproj::writer() const {
  GGUFWriter w;
  for (const auto& [k, v] : keys) w.set(k, v);
  for (const auto& t : tensors) {
    GGMLType type = GGMLType::F32;
    if (t.is_matrix) {
      type = weight_type;
      // Block types need whole blocks per row (the patch embedding's rows are P·P·3 values; a GGUF
      // row is its ne[0] = P); matrices whose rows do not fill blocks stay F32.
      if (t.ne[0] % int64_t(type_block_elems(weight_type)) != 0 ||
          (t.ne.size() != 2 && (t.ne[0] * t.ne[1] * t.ne[2]) % int64_t(type_block_elems(weight_type)) != 0))
        type = GGMLType::F32;
      if (t.ne.size() != 2 && weight_type != GGMLType::F16 && weight_type != GGMLType::BF16) type = GGMLType::F32;
    }
    w.add_tensor_f32(t.name, type, t.ne, t.values.data());
  }
  return w;
}

RandomMmproj make_random_mmproj(const RandomMmprojSpec& s) {
  EV_CHECK(s.image_size > 0 && s.patch_size > 0 && s.patch_size <= s.image_size,
           "random mmproj: bad image size %d / patch size %d", s.image_size, s.patch_size);
  EV_CHECK(s.n_embd > 0 && s.n_head > 0 && s.n_embd % s.n_head == 0,
           "random mmproj: width %d is not a multiple of %d heads", s.n_embd, s.n_head);
  RandomMmproj r;
  r.weight_type = s.weight_type;
  auto key = [&](const std::string& k, GGUFValue v) { r.keys.emplace_back(k, std::move(v)); };
  key("general.architecture", GGUFValue::from_string("clip"));
  key("general.name", GGUFValue::from_string("random-mmproj"));
  key("clip.has_vision_encoder", GGUFValue::from_bool(true));
  key("clip.has_text_encoder", GGUFValue::from_bool(false));
  key("clip.projector_type", GGUFValue::from_string(projector_type_name(s.projector)));
  key("clip.use_gelu", GGUFValue::from_bool(true));
  key("clip.vision.image_size", GGUFValue::from_u32(uint32_t(s.image_size)));
  key("clip.vision.patch_size", GGUFValue::from_u32(uint32_t(s.patch_size)));
  key("clip.vision.embedding_length", GGUFValue::from_u32(uint32_t(s.n_embd)));
  key("clip.vision.feed_forward_length", GGUFValue::from_u32(uint32_t(s.n_ff)));
  key("clip.vision.block_count", GGUFValue::from_u32(uint32_t(s.n_layer)));
  key("clip.vision.attention.head_count", GGUFValue::from_u32(uint32_t(s.n_head)));
  key("clip.vision.attention.layer_norm_epsilon", GGUFValue::from_f32(1e-6f));
  key("clip.vision.projection_dim", GGUFValue::from_u32(uint32_t(s.projection_dim)));
  key("clip.vision.image_mean", GGUFValue::from_f32s({0.5f, 0.5f, 0.5f}));
  key("clip.vision.image_std", GGUFValue::from_f32s({0.5f, 0.5f, 0.5f}));
  key("clip.vision.projector.scale_factor", GGUFValue::from_u32(uint32_t(s.scale_factor)));
  key("edgevlm.tiling.policy", GGUFValue::from_string(s.tiling_policy));
  key("edgevlm.tiling.alpha", GGUFValue::from_f32(s.alpha));
  key("edgevlm.tiling.max_tiles", GGUFValue::from_u32(uint32_t(s.max_tiles)));
  key("edgevlm.tiling.thumbnail", GGUFValue::from_bool(s.thumbnail));
  key("edgevlm.image.start_token", GGUFValue::from_string(s.image_start));
  key("edgevlm.image.end_token", GGUFValue::from_string(s.image_end));
  key("edgevlm.image.tile_separator", GGUFValue::from_string(s.tile_separator));
  key("edgevlm.image.row_separator", GGUFValue::from_string(s.row_separator));
  key("edgevlm.projector.input_norm_epsilon", GGUFValue::from_f32(1e-5f));

  uint64_t state = s.seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  auto uniform = [&]() {  // splitmix64 → [-1, 1)
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return float(double(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  };
  auto add = [&](const std::string& name, std::vector<int64_t> ne, float scale, float offset, bool matrix) {
    NamedTensor t{name, std::move(ne), {}, matrix};
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    t.values.resize(size_t(n));
    for (float& v : t.values) v = offset + scale * uniform();
    r.tensors.push_back(std::move(t));
  };
  const int64_t P = s.patch_size, D = s.n_embd, F = s.n_ff, N = int64_t(s.image_size / s.patch_size) * (s.image_size / s.patch_size);
  const float k3 = std::sqrt(3.0f);  // uniform [-a, a] has variance a²/3
  const bool internvl = s.projector == ProjectorType::InternVL;
  const bool qwen = s.projector == ProjectorType::Qwen2VL || s.projector == ProjectorType::Qwen25VL;
  const bool qwen25 = s.projector == ProjectorType::Qwen25VL;
  if (qwen) {
    // The converter's Qwen2-VL keys: no clip.use_gelu (QuickGELU), SwiGLU and the window pattern
    // for 2.5 (full attention every 4th layer here; Qwen2.5-VL's 32 layers: every 8th).
    std::erase_if(r.keys, [](const auto& kv) {
      return kv.first == "clip.use_gelu" || kv.first == "clip.vision.projector.scale_factor";
    });
    if (qwen25) {
      key("clip.use_silu", GGUFValue::from_bool(true));
      key("clip.vision.n_wa_pattern", GGUFValue::from_u32(uint32_t(std::min(s.window_pattern, s.n_layer))));
    }
    // Two temporal slices of the Conv3d, no bias, no position table (2-D RoPE).
    add("v.patch_embd.weight", {P, P, 3, D}, k3 / std::sqrt(float(6 * P * P)), 0, true);
    add("v.patch_embd.weight.1", {P, P, 3, D}, k3 / std::sqrt(float(6 * P * P)), 0, true);
  } else {
    add("v.patch_embd.weight", {P, P, 3, D}, k3 / std::sqrt(float(3 * P * P)), 0, true);
    add("v.patch_embd.bias", {D}, 0.1f, 0, false);
  }
  if (internvl) {  // the converter's shapes: the class token's position row included
    add("v.class_embd", {D, 1, 1}, 0.5f, 0, false);
    add("v.position_embd.weight", {D, N + 1, 1}, 0.5f, 0, false);
  } else if (!qwen) {
    add("v.position_embd.weight", {D, N}, 0.5f, 0, false);
  }
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string p = "v.blk." + std::to_string(i) + ".";
    add(p + "ln1.weight", {D}, 0.2f, 1.0f, false);
    if (!qwen25) add(p + "ln1.bias", {D}, 0.1f, 0, false);
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      add(p + n + ".weight", {D, D}, k3 / std::sqrt(float(D)), 0, true);
      add(p + n + ".bias", {D}, 0.1f, 0, false);
    }
    add(p + "ln2.weight", {D}, 0.2f, 1.0f, false);
    if (!qwen25) add(p + "ln2.bias", {D}, 0.1f, 0, false);
    if (qwen25) {
      add(p + "ffn_gate.weight", {D, F}, k3 / std::sqrt(float(D)), 0, true);
      add(p + "ffn_gate.bias", {F}, 0.1f, 0, false);
    }
    add(p + "ffn_up.weight", {D, F}, k3 / std::sqrt(float(D)), 0, true);
    add(p + "ffn_up.bias", {F}, 0.1f, 0, false);
    add(p + "ffn_down.weight", {F, D}, k3 / std::sqrt(float(F)), 0, true);
    add(p + "ffn_down.bias", {D}, 0.1f, 0, false);
    if (internvl) {
      add(p + "ls1.weight", {D}, 0.3f, 0.7f, false);
      add(p + "ls2.weight", {D}, 0.3f, 0.7f, false);
    }
  }
  if (!internvl) {  // InternViT has no post-LayerNorm
    add("v.post_ln.weight", {D}, 0.2f, 1.0f, false);
    if (!qwen25) add("v.post_ln.bias", {D}, 0.1f, 0, false);
  }
  const int64_t MD = s.projector == ProjectorType::Gemma3 ? D : D * s.scale_factor * s.scale_factor,
                OUT = s.projection_dim;
  if (s.projector == ProjectorType::Lfm2) {
    const int64_t H = s.proj_hidden > 0 ? s.proj_hidden : OUT;
    add("mm.input_norm.weight", {MD}, 0.2f, 1.0f, false);
    add("mm.input_norm.bias", {MD}, 0.1f, 0, false);
    add("mm.1.weight", {MD, H}, k3 / std::sqrt(float(MD)), 0, true);
    add("mm.1.bias", {H}, 0.1f, 0, false);
    add("mm.2.weight", {H, OUT}, k3 / std::sqrt(float(H)), 0, true);
    add("mm.2.bias", {OUT}, 0.1f, 0, false);
  } else if (internvl) {
    const int64_t H = s.proj_hidden > 0 ? s.proj_hidden : OUT;
    add("mm.model.mlp.0.weight", {MD}, 0.2f, 1.0f, false);
    add("mm.model.mlp.0.bias", {MD}, 0.1f, 0, false);
    add("mm.model.mlp.1.weight", {MD, H}, k3 / std::sqrt(float(MD)), 0, true);
    add("mm.model.mlp.1.bias", {H}, 0.1f, 0, false);
    add("mm.model.mlp.3.weight", {H, OUT}, k3 / std::sqrt(float(H)), 0, true);
    add("mm.model.mlp.3.bias", {OUT}, 0.1f, 0, false);
  } else if (qwen) {  // the merger's MLP: 4·D → 4·D → text width
    add("mm.0.weight", {MD, MD}, k3 / std::sqrt(float(MD)), 0, true);
    add("mm.0.bias", {MD}, 0.1f, 0, false);
    add("mm.2.weight", {MD, OUT}, k3 / std::sqrt(float(MD)), 0, true);
    add("mm.2.bias", {OUT}, 0.1f, 0, false);
  } else if (s.projector == ProjectorType::Gemma3) {
    add("mm.soft_emb_norm.weight", {D}, 0.2f, 1.0f, false);
    add("mm.input_projection.weight", {OUT, D}, k3 / std::sqrt(float(D)), 0, true);  // the converter's [vit, text]
  } else {
    add("mm.model.fc.weight", {MD, OUT}, k3 / std::sqrt(float(MD)), 0, true);
  }
  return r;
}

void write_random_mmproj(const std::string& path, const RandomMmprojSpec& spec) {
  make_random_mmproj(spec).writer().write(path);
}

MmprojModel::~MmprojModel() {
  for (const WeightMatrix* w : matrices()) matmul_forget(*w);
}

std::vector<const WeightMatrix*> MmprojModel::matrices() const {
  std::vector<const WeightMatrix*> ws = {&patch_embd, &mm_1, &mm_2, &mm_fc, &mm_input_proj};
  for (const VitBlock& b : blocks)
    for (const WeightMatrix* w : {&b.q, &b.k, &b.v, &b.o, &b.up, &b.down, &b.gate}) ws.push_back(w);
  return ws;
}

}  // namespace edgevlm
