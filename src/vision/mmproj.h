// The vision side of a model: the "mmproj" GGUF (general.architecture = clip) with the clip.*
// conventions of the GGUF ecosystem plus our edgevlm.* keys (docs/FORMAT.md §1):
//   SigLIP ViT  v.patch_embd, v.position_embd, v.blk.N.{ln1,attn_q,attn_k,attn_v,attn_out,ln2,
//               ffn_up,ffn_down}, v.post_ln (optional, as in llama.cpp)
//   projector   clip.projector_type = lfm2:     2×2 merge → mm.input_norm (LN) → mm.1 → GELU → mm.2
//                                     idefics3: s×s merge → mm.model.fc (one Linear, no bias)
//                                     internvl: s×s merge → mm.model.mlp.0 (LN, eps 1e-5) → mm.model.mlp.1 → GELU → mm.model.mlp.3
//                                     gemma3:   s×s average pool → RMSNorm (mm.soft_emb_norm) → mm.input_projection
//                                     qwen2vl_merger / qwen2.5vl_merger: 2×2 merge → mm.0 → GELU → mm.2
//               (qwen2vl's ViT: no position table but 2-D RoPE, v.patch_embd.weight.1, RMSNorm,
//               SwiGLU v.blk.N.ffn_gate and window attention for 2.5: src/vision/family_qwen2vl.h)
//               (internvl's ViT, InternViT-300M: a class token v.class_embd appended after the
//               patches, position embeddings for patches + class token, layer scales
//               v.blk.N.ls1/ls2 on the attention and MLP outputs; the class token is dropped
//               after the blocks)
// Every size is read from the keys and every tensor's shape is checked against them at load, so
// a bad file fails here with a message naming the tensor, never later inside a kernel.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model/lora.h"
#include "ops/matmul.h"

namespace edgevlm {

enum class ProjectorType { Lfm2, Idefics3, InternVL, Gemma3, Qwen2VL, Qwen25VL };
// The ViT's MLP: Linear → GELU (tanh) → Linear (SigLIP), → QuickGELU (Qwen2-VL), or the SwiGLU
// silu(gate) ⊙ up → down (Qwen2.5-VL).
enum class VitAct { GeluTanh, GeluQuick, SwiGLU };

// Patches per tile a vision model may have (so400m: 729; the largest public encoders: 4096).
inline constexpr int kMaxPatchesPerTile = 16384;
// "lfm2", "idefics3", "internvl", "gemma3", "qwen2vl_merger", "qwen2.5vl_merger"
const char* projector_type_name(ProjectorType t);

struct VisionConfig {
  int image_size = 0;      // tile side in pixels
  int patch_size = 0;      // need not divide image_size: as Conv2d, the last image_size % patch_size
                           // rows and columns are not seen (so400m: 384 = 27·14 + 6)
  int n_embd = 0;          // ViT width
  int n_ff = 0;            // ViT MLP width
  int n_layer = 0;
  int n_head = 0;
  float eps = 1e-6f;       // every LayerNorm of the ViT
  int projection_dim = 0;  // LLM width: the projector's output
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std = {0.5f, 0.5f, 0.5f};
  int scale_factor = 2;    // s×s merge
  ProjectorType projector = ProjectorType::Lfm2;
  float proj_norm_eps = 1e-5f;  // mm.input_norm (llama.cpp hard-codes 1e-5 for lfm2)

  // edgevlm.* (defaults for files from other tools, which have none: one tile, no markers).
  std::string tiling_policy = "single";  // relaxed | llava_next | single (as written in the file)
  float tiling_alpha = 0.1f;
  int max_tiles = 1;
  bool thumbnail = true;
  std::string image_start, image_end, tile_separator, row_separator;
  // Model-family conventions (src/vision/family_*.h set them at load for the files of their family):
  int longest_edge = 0;            // idefics3: clip.vision.preproc_image_size (0: absent)
  std::string tile_marker_format;  // text before grid tile (row, col), printf with two %d, 1-based ("": none)
  std::vector<std::string> thumbnail_start, thumbnail_end;  // around the thumbnail (else row_separator before it)
  bool thumbnail_markers_alone = true;  // also around an image that is not cut (false: LFM2-VL's bare image)

  int patches_per_side() const { return image_size / patch_size; }
  int n_patches() const { return patches_per_side() * patches_per_side(); }
  int head_dim() const { return n_embd / n_head; }
  int patch_dim() const { return 3 * patch_size * patch_size; }
  int merged_side() const { return (patches_per_side() + scale_factor - 1) / scale_factor; }
  int tokens_per_tile() const { return merged_side() * merged_side(); }
  // A merged token's width: s×s tokens side by side, or one averaged token (gemma3's pool).
  int merged_dim() const { return projector == ProjectorType::Gemma3 ? n_embd : n_embd * scale_factor * scale_factor; }
  bool class_token = false;  // the ViT appends a class token (internvl)
  // Which position-embedding row the class token takes: false (InternViT's own), row 0, patch p
  // row p + 1; true (llama.cpp mtmd's pairing), row n_patches, patch p row p (MmprojLoadOptions).
  bool class_position_last = false;
  int min_tiles = 1;          // internvl: clip.vision.preproc_min_tiles
  int vit_tokens() const { return n_patches() + (class_token ? 1 : 0); }
  // Images of another patch grid than the file's square tile take position embeddings resized to
  // their grid (bilinear with antialiasing, as SigLIP2 NaFlex and llama.cpp do for lfm2); without it
  // such an image is refused.
  bool interpolate_positions = false;
  // The decoder reads an image's positions both ways (Gemma 3: llama.cpp decodes it non-causally).
  bool bidirectional_image_attention = false;
  // Qwen2-VL / Qwen2.5-VL (src/vision/family_qwen2vl.h):
  bool rope_2d = false;          // no position table: 2-D RoPE by each patch's (row, column) in every attention
  bool rms_norms = false;        // the ViT's norms are RMSNorm (no bias), else LayerNorm
  VitAct vit_act = VitAct::GeluTanh;
  int window_pattern = 0;        // > 0: layer l attends within windows unless (l + 1) % window_pattern == 0
  int window_patches = 0;        // a window's side in patches
  bool mrope_positions = false;  // the decoder gives the image's tokens 2-D M-RoPE coordinates
  bool window_layer(int l) const { return window_pattern > 0 && (l + 1) % window_pattern != 0; }
};

struct VitBlock {
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;
  // down.n_in ≥ n_ff: an INT8 ViT's down-projection may be a padded Q8_0 copy (down_q8), whose
  // inputs past n_ff multiply zero weights and must be given as zeros.
  WeightMatrix q, k, v, o, up, down;
  WeightMatrix gate;  // VitAct::SwiGLU only
  std::vector<float> q_b, k_b, v_b, o_b, up_b, down_b, gate_b;  // empty when the file has no bias
  std::vector<float> ls1, ls2;  // layer scales of the attention / MLP outputs (internvl); empty: none
  std::unique_ptr<uint8_t[]> down_q8;                    // owns down's data when it is that copy
};

struct MmprojLoadOptions {
  // "mtmd": reproduce llama.cpp mtmd's ViT where it departs from the model's authors (InternViT:
  // the class token takes the last position row, each patch the row of its own index); "": the
  // authors' arithmetic.
  std::string vit_compat;
};

// Weights are views into the GGUF mapping (matrices) or owned F32 copies (vectors).
class MmprojModel {
 public:
  // Reads the config and checks every tensor. Keeps a reference to f, which must outlive the model.
  // Throws edgevlm::Error naming the file and the key or tensor at fault.
  // adapters: LoRA adapters on the ViT and projector (general.architecture "clip", targets named
  // as this file's tensors, e.g. v.blk.0.attn_q.weight, mm.1.weight; model/lora.h), merged into
  // F32 matrices or applied on the fly as mode says; they may be closed once load returns.
  static std::unique_ptr<MmprojModel> load(const GGUFFile& f, const MmprojLoadOptions& opt = {},
                                           const std::vector<const LoraAdapter*>& adapters = {},
                                           LoraMode mode = LoraMode::Auto);
  ~MmprojModel();  // frees the repacked copies of its matrices (low-memory mode unmaps the file after each encode)
  // Every weight matrix the ViT and projector multiply by.
  std::vector<const WeightMatrix*> matrices() const;

  const VisionConfig& config() const { return cfg_; }
  const GGUFFile& file() const { return *file_; }
  // Bytes of all weights (for memory reports).
  size_t weight_bytes() const { return weight_bytes_; }
  // The LoRA adapters applied at load, or null without any.
  const LoraWeights* lora() const { return lora_.get(); }

  // ViT
  WeightMatrix patch_embd;          // n_in = 3·P·P in (c, ky, kx) order, n_out = n_embd
  std::vector<float> patch_bias;    // n_embd (zeros when absent)
  std::vector<float> patch_embd_data;  // its F32 storage when made at load (Qwen2-VL's two slices summed)
  std::vector<float> pos_embd;      // n_patches × n_embd (+ 1 row for the class token when there is one); empty with rope_2d
  std::vector<float> class_embd;    // n_embd: the class token appended after the patches (internvl); empty: none
  // INT8 ViT: when every block matrix is Q8_0 but the down-projections, which a GGUF file cannot
  // hold as Q8_0 because their rows are not whole blocks (so400m's 4304), load quantizes those
  // to Q8_0 too, rows zero-padded to whole blocks, so that the whole ViT runs on the int8
  // kernels (the float path took a third of an encode); the file's pages are given back.
  std::vector<VitBlock> blocks;
  std::vector<float> post_ln_w, post_ln_b;  // empty when the file has no post-LN
  // Projector
  std::vector<float> mm_norm_w, mm_norm_b;  // lfm2: merged_dim (empty when absent)
  WeightMatrix mm_1, mm_2;                  // lfm2
  std::vector<float> mm_1_b, mm_2_b;
  WeightMatrix mm_fc;                       // idefics3
  std::vector<float> mm_fc_b;               // idefics3: empty (llama.cpp has none)
  std::vector<float> mm_soft_norm_w;        // gemma3: mm.soft_emb_norm (RMSNorm weight, 1 added)
  WeightMatrix mm_input_proj;               // gemma3: mm.input_projection, transposed to n_embd → projection_dim
  std::vector<float> mm_input_proj_data;    // its F32 storage

 private:
  MmprojModel() = default;
  const GGUFFile* file_ = nullptr;
  VisionConfig cfg_;
  size_t weight_bytes_ = 0;
  std::unique_ptr<LoraWeights> lora_;
};

// ---- Random-weight mmproj files: the subjects of unit tests and of benchmarks at the paper's
// sizes (so400m: image 384, patch 14, width 1152, 27 blocks, 16 heads, MLP 4304).
struct RandomMmprojSpec {
  int image_size = 32, patch_size = 8, n_embd = 32, n_ff = 64, n_layer = 2, n_head = 4;
  int projection_dim = 48;  // LLM width
  int proj_hidden = 0;      // lfm2: width of mm.1's output (0: projection_dim)
  int scale_factor = 2;
  ProjectorType projector = ProjectorType::Lfm2;
  int window_pattern = 4;  // qwen2.5vl_merger: clip.vision.n_wa_pattern (at most n_layer)
  GGMLType weight_type = GGMLType::F32;  // 2-D matrices (and patch_embd when F16); vectors stay F32
  uint64_t seed = 1;
  std::string tiling_policy = "relaxed";
  float alpha = 0.1f;
  int max_tiles = 4;
  bool thumbnail = true;
  std::string image_start = "<image>", image_end = "</image>", tile_separator = "<tile>", row_separator = "<row>";
};

struct NamedTensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> values;
  bool is_matrix = false;  // stored in RandomMmprojSpec::weight_type
};

// Keys and F32 tensors of a random model, editable before writing (tests break them on purpose).
struct RandomMmproj {
  std::vector<std::pair<std::string, GGUFValue>> keys;
  std::vector<NamedTensor> tensors;
  GGMLType weight_type = GGMLType::F32;
  NamedTensor* find(const std::string& name);
  void erase(const std::string& name);
  GGUFWriter writer() const;
};
// Deterministic in spec.seed: uniform weights of variance 1/n_in, LayerNorm weights near 1.
RandomMmproj make_random_mmproj(const RandomMmprojSpec& spec);
void write_random_mmproj(const std::string& path, const RandomMmprojSpec& spec);

}  // namespace edgevlm
