#include "vision/family_qwen2vl.h"

#include "core/error.h"

namespace edgevlm {

void qwen2vl_configure(const GGUFFile& f, VisionConfig& c) {
  const char* path = f.path().c_str();
  const bool v25 = c.projector == ProjectorType::Qwen25VL;
  c.rope_2d = true;
  c.mrope_positions = true;
  c.rms_norms = v25;
  // As llama.cpp reads clip.use_silu / clip.use_gelu: SwiGLU, GELU, else QuickGELU (Qwen2-VL's).
  const bool silu = f.get_bool_or("clip.use_silu", false), gelu = f.get_bool_or("clip.use_gelu", false);
  EV_CHECK(!(silu && gelu), "mmproj '%s': clip.use_silu and clip.use_gelu are both set", path);
  c.vit_act = silu ? VitAct::SwiGLU : gelu ? VitAct::GeluTanh : VitAct::GeluQuick;
  const int merge = f.has("clip.vision.spatial_merge_size") ? int(f.get_int("clip.vision.spatial_merge_size")) : kQwen2VLMerge;
  EV_CHECK(merge == kQwen2VLMerge, "mmproj '%s': clip.vision.spatial_merge_size %d is not supported (2)", path, merge);
  c.scale_factor = kQwen2VLMerge;
  if (v25) {
    EV_CHECK(f.has("clip.vision.n_wa_pattern"), "mmproj '%s': key 'clip.vision.n_wa_pattern' is missing (projector "
             "type qwen2.5vl_merger)", path);
    const int64_t n = f.get_int("clip.vision.n_wa_pattern");
    EV_CHECK(n >= 0 && n <= c.n_layer, "mmproj '%s': clip.vision.n_wa_pattern %lld is outside [0, %d]", path,
             (long long)n, c.n_layer);
    c.window_pattern = int(n);
    c.window_patches = kQwen25VLWindowPixels / c.patch_size;
    EV_CHECK(c.window_pattern == 0 || (c.window_patches >= kQwen2VLMerge && c.window_patches % kQwen2VLMerge == 0),
             "mmproj '%s': patch size %d gives windows of %d patches, not a multiple of the 2 x 2 merge", path,
             c.patch_size, c.window_patches);
  }
  c.tiling_policy = "qwen2vl";
  c.max_tiles = 1;
  c.thumbnail = true;
  c.image_start = "<|vision_start|>";
  c.image_end = "<|vision_end|>";
  c.tile_separator.clear();
  c.row_separator.clear();
}

void qwen2vl_tiling(const VisionConfig& c, TilingConfig& t) {
  if (t.strategy != TilingStrategy::Qwen2VL) return;  // --tiling relaxed etc.: square tiles of the file's size
  const int align = c.patch_size * kQwen2VLMerge;
  t.thumbnail = ThumbnailPlacement::Last;
  t.smart = {align, kQwen2VLMinTokens * align * align, kQwen2VLMaxTokens * align * align, c.patch_size, false};
  t.thumbnail_resize = ResizeMode::Stretch;
  t.filter = ResampleFilter::Bicubic;
}

void qwen2vl_mtmd_resampling(const VisionConfig& c, TilingConfig& t) {
  if (t.strategy != TilingStrategy::Qwen2VL) return;
  const int align = c.patch_size * kQwen2VLMerge;
  t.smart = {align, kQwen2VLMtmdMinTokens * align * align, kQwen2VLMtmdMaxTokens * align * align, c.patch_size, true};
  t.thumbnail_resize = ResizeMode::Pad;
  t.pad_rgb = std::array<uint8_t, 3>{0, 0, 0};
  t.pad_float32 = true;
  t.filter = ResampleFilter::LlamaCppBilinear;
}

}  // namespace edgevlm
