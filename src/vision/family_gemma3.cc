#include "vision/family_gemma3.h"

namespace edgevlm {

void gemma3_configure(const GGUFFile& f, VisionConfig& c) {
  c.bidirectional_image_attention = true;
  if (f.has("edgevlm.tiling.policy")) return;
  c.tiling_policy = "single";
  c.max_tiles = 1;
  c.thumbnail = false;
  c.image_start = "<start_of_image>";
  c.image_end = "<end_of_image>";
  c.tile_separator.clear();
  c.row_separator.clear();
}

void gemma3_tiling(const VisionConfig&, TilingConfig& t) {
  if (t.strategy != TilingStrategy::Single) return;  // --tiling relaxed etc. keep their own resize
  t.resize = ResizeMode::Stretch;
  t.filter = ResampleFilter::Bilinear;
}

void gemma3_mtmd_resampling(TilingConfig& t) {
  t.filter = ResampleFilter::LlamaCppBilinear;
  t.resize = ResizeMode::Pad;
  t.pad_rgb = std::array<uint8_t, 3>{0, 0, 0};
  t.pad_float32 = true;
}

}  // namespace edgevlm
