#include "vision/family_internvl.h"

#include <algorithm>
#include <climits>

#include "core/error.h"

namespace edgevlm {

void internvl_configure(const GGUFFile& f, VisionConfig& c) {
  c.class_token = true;
  auto tiles_key = [&](const char* key, int fallback) {
    if (!f.has(key)) return fallback;
    const int64_t v = f.get_int(key);
    if (v < 1 || v > 64) fail("mmproj '%s': key '%s' = %lld is out of range [1, 64]", f.path().c_str(), key, (long long)v);
    return int(v);
  };
  c.min_tiles = tiles_key("clip.vision.preproc_min_tiles", 1);
  const int max_tiles = tiles_key("clip.vision.preproc_max_tiles", 12);
  if (c.min_tiles > max_tiles)
    fail("mmproj '%s': clip.vision.preproc_min_tiles %d exceeds preproc_max_tiles %d", f.path().c_str(), c.min_tiles,
         max_tiles);
  if (!f.has("edgevlm.tiling.policy")) {
    c.tiling_policy = "internvl";
    c.thumbnail = true;
  }
  if (!f.has("edgevlm.tiling.max_tiles")) c.max_tiles = max_tiles;
  const bool own_markers = f.has("edgevlm.image.start_token") || f.has("edgevlm.image.end_token") ||
                           f.has("edgevlm.image.tile_separator") || f.has("edgevlm.image.row_separator");
  if (!own_markers) {
    c.image_start = kInternVLImageStart;
    c.image_end = kInternVLImageEnd;
    c.tile_separator.clear();
    c.row_separator.clear();
  }
}

void internvl_tiling(const VisionConfig& c, TilingConfig& t) {
  t.min_tiles = std::min(c.min_tiles, t.max_tiles);
  t.thumbnail = ThumbnailPlacement::Last;
  t.filter = ResampleFilter::Bicubic;  // torchvision's Resize(BICUBIC) on PIL images
  if (t.strategy == TilingStrategy::InternVLMtmd) {
    t.thumbnail_with_single_tile = true;
    t.resize = ResizeMode::Pad;
    t.thumbnail_resize = ResizeMode::Stretch;
    t.pad_rgb = std::array<uint8_t, 3>{0, 0, 0};
    t.pad_float32 = true;
  }  // else: InternVL's own rule stretches (ResizeMode::Auto); --tiling relaxed/llava-next pad
}

Grid internvl_mtmd_grid(int width, int height, const std::vector<Grid>& candidates, int tile) {
  EV_CHECK(width > 0 && height > 0, "image size must be positive, got %d x %d", width, height);
  if (width <= tile && height <= tile) return {0, 0};
  Grid best{0, 0};
  int64_t best_eff = 0, best_waste = INT64_MAX;
  for (const Grid& g : candidates) {
    const int cw = g.m * tile, ch = g.n * tile;
    const float scale = std::min(float(cw) / float(width), float(ch) / float(height));
    const int64_t tw = int64_t(float(width) * scale), th = int64_t(float(height) * scale);
    const int64_t eff = std::min(tw * th, int64_t(width) * height);
    const int64_t waste = int64_t(cw) * ch - eff;
    if (eff > best_eff || (eff == best_eff && waste < best_waste)) {
      best_eff = eff;
      best_waste = waste;
      best = g;
    }
  }
  return best.m > 0 ? best : candidates.front();
}

void internvl_mtmd_resampling(TilingConfig& t) {
  t.filter = ResampleFilter::LlamaCppBicubic;
  t.thumbnail_filter = ResampleFilter::LlamaCppBilinear;
}

}  // namespace edgevlm
