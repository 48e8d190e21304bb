#include "vision/family_lfm2.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace edgevlm {

void lfm2_configure(const GGUFFile& f, VisionConfig& c) {
  // SigLIP2 NaFlex: one table of position embeddings for every image size.
  c.interpolate_positions = true;
  if (f.has("edgevlm.tiling.policy")) return;  // edgevlm's own lfm2-projector files keep their tiling and markers
  c.tiling_policy = "lfm2";
  c.thumbnail = true;
  c.min_tiles = kLfm2MinTiles;
  c.max_tiles = kLfm2MaxTiles;
  c.image_start = "<|image_start|>";
  c.image_end = "<|image_end|>";
  c.tile_separator.clear();
  c.row_separator.clear();
  c.tile_marker_format = "<|img_row_%d_col_%d|>";
  c.thumbnail_start = {"<|img_thumbnail|>"};
  c.thumbnail_end.clear();
  c.thumbnail_markers_alone = false;
}

void lfm2_tiling(const VisionConfig& c, TilingConfig& t) {
  t.tile_size = kLfm2TileSize;
  t.min_tiles = kLfm2MinTiles;
  t.max_tiles = std::max(t.max_tiles, kLfm2MinTiles);
  t.thumbnail = ThumbnailPlacement::Last;
  const int align = c.patch_size * c.scale_factor;
  t.smart = {align, kLfm2MinImageTokens * align * align, kLfm2MaxImageTokens * align * align, c.patch_size};
  if (t.strategy == TilingStrategy::Lfm2Mtmd) {
    t.smart.float32 = true;
    t.resize = ResizeMode::Pad;
    t.pad_rgb = std::array<uint8_t, 3>{0, 0, 0};
    t.pad_float32 = true;
    t.filter = ResampleFilter::LlamaCppBilinear;
  } else {
    t.resize = ResizeMode::Stretch;
    t.filter = ResampleFilter::Bilinear;
  }
  t.thumbnail_resize = ResizeMode::Stretch;
}

Grid lfm2_grid(int width, int height, const TilingConfig& t) {
  // _is_image_too_large: sides rounded to the merged patch (at least one patch), against
  // max tokens × tolerance.
  const int f = t.smart.align, patch = t.smart.patch;
  auto round_f = [f](double x) { return int64_t(std::nearbyint(x / f)) * f; };
  const int64_t h = std::max<int64_t>(patch, round_f(height)), w = std::max<int64_t>(patch, round_f(width));
  if (double(h * w) <= double(t.smart.max_pixels) * kLfm2MaxPixelsTolerance) return {0, 0};
  return select_grid_internvl(width, height, t.effective_candidates(), t.tile_size);
}

Grid lfm2_mtmd_grid(int width, int height, const TilingConfig& t) {
  const float limit = float(t.tile_size) * kLfm2MaxPixelsTolerance;
  if (!(float(width) > limit || float(height) > limit)) return {0, 0};
  // mtmd's candidates: generated n by n, w by w, h by h, then std::sort by tile count (its order
  // among grids of equal count is the sort's, which only matters on an exact tie).
  std::vector<Grid> ratios;
  for (int n = t.min_tiles; n <= t.max_tiles; ++n)
    for (int w = 1; w <= n; ++w)
      for (int h = 1; h <= n; ++h)
        if (w * h >= t.min_tiles && w * h <= t.max_tiles &&
            std::find(ratios.begin(), ratios.end(), Grid{w, h}) == ratios.end())
          ratios.push_back({w, h});
  std::sort(ratios.begin(), ratios.end(), [](const Grid& a, const Grid& b) { return a.tiles() < b.tiles(); });
  const float aspect = float(width) / float(height), area = float(width * height);
  float best_diff = std::numeric_limits<float>::max();
  Grid best{1, 1};
  for (const Grid& r : ratios) {
    const float diff = std::fabs(aspect - float(r.m) / float(r.n));
    if (diff < best_diff) {
      best_diff = diff;
      best = r;
    } else if (diff == best_diff && area > 0.5f * float(t.tile_size * t.tile_size * r.m * r.n)) {
      best = r;
    }
  }
  return best;
}

}  // namespace edgevlm
