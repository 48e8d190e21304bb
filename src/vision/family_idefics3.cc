#include "vision/family_idefics3.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace edgevlm {

Idefics3Sizing idefics3_sizing(int width, int height, int tile, int longest_edge) {
  EV_CHECK(width > 0 && height > 0, "image size must be positive, got %d x %d", width, height);
  EV_CHECK(tile > 0, "tile size must be positive, got %d", tile);
  Idefics3Sizing s;
  if (longest_edge <= 0) return s;
  // float32 throughout, as mtmd computes it: the scale that brings the longest edge to
  // longest_edge, then each side rounded up to whole tiles.
  const float scale = std::min(float(longest_edge) / float(width), float(longest_edge) / float(height));
  const float tw = float(width) * scale, th = float(height) * scale;
  auto ceil_tiles = [tile](float x) { return int(std::ceil(x / float(tile))); };
  s.grid = {std::max(1, ceil_tiles(tw)), std::max(1, ceil_tiles(th))};
  s.refined_w = s.grid.m * tile;
  s.refined_h = s.grid.n * tile;
  return s;
}

Idefics3HfSizing idefics3_hf_sizing(int width, int height, int tile, int longest_edge) {
  EV_CHECK(width > 0 && height > 0, "image size must be positive, got %d x %d", width, height);
  EV_CHECK(tile > 0, "tile size must be positive, got %d", tile);
  Idefics3HfSizing s;
  if (longest_edge <= 0) return s;
  // _resize_output_size_rescale_to_max_len (Python floats: double).
  double aspect = double(width) / double(height);
  int w = width, h = height;
  if (w >= h) {
    w = longest_edge;
    h = int(double(w) / aspect);
    if (h % 2 != 0) ++h;
  } else {
    h = longest_edge;
    w = int(double(h) * aspect);
    if (w % 2 != 0) ++w;
  }
  s.w1 = std::max(w, 1);
  s.h1 = std::max(h, 1);
  // resize_for_vision_encoder, on the resized image's own aspect ratio.
  aspect = double(s.w1) / double(s.h1);
  auto up = [tile](double x) { return int(std::ceil(x / tile)) * tile; };
  int W, H;
  if (s.w1 >= s.h1) {
    W = up(s.w1);
    H = up(double(int(double(W) / aspect)));
  } else {
    H = up(s.h1);
    W = up(double(int(double(H) * aspect)));
  }
  W = std::max(W, tile);
  H = std::max(H, tile);
  s.canvas.refined_w = W;
  s.canvas.refined_h = H;
  // split_image cuts only an image larger than one tile.
  s.canvas.grid = (W > tile || H > tile) ? Grid{W / tile, H / tile} : Grid{0, 0};
  return s;
}

Image idefics3_hf_canvas(const Image& img, int tile, int longest_edge, ResampleFilter filter) {
  const Idefics3HfSizing s = idefics3_hf_sizing(img.width, img.height, tile, longest_edge);
  if (s.w1 == 0) return Image();
  const Image first = resize_image(img, s.w1, s.h1, filter);
  return resize_image(first, s.canvas.refined_w, s.canvas.refined_h, filter);
}

void idefics3_configure(const GGUFFile& f, VisionConfig& c) {
  c.longest_edge = 0;
  if (f.has("clip.vision.preproc_image_size")) {
    const int64_t v = f.get_int("clip.vision.preproc_image_size");
    if (v < 1 || v > 65536)
      fail("mmproj '%s': key 'clip.vision.preproc_image_size' = %lld is out of range [1, 65536]", f.path().c_str(),
           (long long)v);
    c.longest_edge = int(v);
  }
  // A file with edgevlm.* keys states its own layout; the converter's files have none.
  if (!f.has("edgevlm.tiling.policy")) {
    c.tiling_policy = "idefics3";
    c.thumbnail = true;
  }
  if (!f.has("edgevlm.tiling.max_tiles")) {
    const int side = c.longest_edge > 0 ? (c.longest_edge + c.image_size - 1) / c.image_size : 1;
    c.max_tiles = std::clamp(side * side, 1, 64);
  }
  const bool own_markers = f.has("edgevlm.image.start_token") || f.has("edgevlm.image.end_token") ||
                           f.has("edgevlm.image.tile_separator") || f.has("edgevlm.image.row_separator");
  if (!own_markers) {
    c.image_start.clear();
    c.image_end.clear();
    c.tile_separator.clear();
    c.row_separator = "\n";
    c.tile_marker_format = kIdefics3TileMarker;
    c.thumbnail_start = {"\n\n", kIdefics3FakeToken, kIdefics3GlobalImg};
    c.thumbnail_end = {kIdefics3FakeToken};
  }
}

void idefics3_tiling(const VisionConfig& c, TilingConfig& t) {
  t.longest_edge = c.longest_edge;
  t.thumbnail = ThumbnailPlacement::Last;
  t.thumbnail_with_single_tile = true;
  t.thumbnail_resize = ResizeMode::Stretch;
  if (t.strategy == TilingStrategy::Idefics3Mtmd) t.resize = ResizeMode::Pad;
  t.pad_float32 = t.strategy == TilingStrategy::Idefics3Mtmd;  // mtmd's sizes are float32, as its grid rule
  t.pad_rgb = std::array<uint8_t, 3>{0, 0, 0};
  t.filter = ResampleFilter::Lanczos;  // transformers' Idefics3ImageProcessor resamples with LANCZOS
  t.thumbnail_filter.reset();
}

void idefics3_mtmd_resampling(TilingConfig& t) {
  t.filter = ResampleFilter::LlamaCppBicubic;
  t.thumbnail_filter = ResampleFilter::LlamaCppBilinear;
}

}  // namespace edgevlm
