#include "vision/dynamic_resolution.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>

#include "core/error.h"
#include "vision/family_idefics3.h"
#include "vision/family_internvl.h"
#include "vision/family_lfm2.h"
#include "vision/resize.h"

namespace edgevlm {

TilingStrategy parse_tiling_strategy(std::string_view name) {
  if (name == "relaxed") return TilingStrategy::Relaxed;
  if (name == "llava-next" || name == "llava_next" || name == "llavanext") return TilingStrategy::LlavaNext;
  if (name == "internvl" || name == "internvl-1.5") return TilingStrategy::InternVL;
  if (name == "single") return TilingStrategy::Single;
  if (name == "idefics3" || name == "smolvlm") return TilingStrategy::Idefics3;
  if (name == "internvl-mtmd") return TilingStrategy::InternVLMtmd;
  if (name == "idefics3-mtmd" || name == "smolvlm-mtmd") return TilingStrategy::Idefics3Mtmd;
  if (name == "lfm2") return TilingStrategy::Lfm2;
  if (name == "lfm2-mtmd") return TilingStrategy::Lfm2Mtmd;
  if (name == "qwen2vl" || name == "qwen2.5vl") return TilingStrategy::Qwen2VL;
  fail("unknown tiling strategy '%.*s' (expected relaxed, llava-next, internvl, single, idefics3, idefics3-mtmd, "
       "internvl-mtmd, lfm2, lfm2-mtmd or qwen2vl)",
       int(name.size()),
       name.data());
}

const char* tiling_strategy_name(TilingStrategy s) {
  switch (s) {
    case TilingStrategy::Relaxed: return "relaxed";
    case TilingStrategy::LlavaNext: return "llava-next";
    case TilingStrategy::InternVL: return "internvl";
    case TilingStrategy::Single: return "single";
    case TilingStrategy::Idefics3: return "idefics3";
    case TilingStrategy::InternVLMtmd: return "internvl-mtmd";
    case TilingStrategy::Idefics3Mtmd: return "idefics3-mtmd";
    case TilingStrategy::Lfm2: return "lfm2";
    case TilingStrategy::Lfm2Mtmd: return "lfm2-mtmd";
    case TilingStrategy::Qwen2VL: return "qwen2vl";
  }
  return "?";
}

std::string grid_str(Grid g) { return std::to_string(g.m) + "x" + std::to_string(g.n); }

std::vector<Grid> default_grid_candidates(int max_tiles, int min_tiles) {
  EV_CHECK(max_tiles >= 1 && max_tiles <= 1024, "max_tiles must be in 1..1024, got %d", max_tiles);
  EV_CHECK(min_tiles >= 1 && min_tiles <= max_tiles, "min_tiles must be in 1..max_tiles (%d), got %d", max_tiles,
           min_tiles);
  std::vector<Grid> out;
  for (int t = min_tiles; t <= max_tiles; ++t)
    for (int m = 1; m <= t; ++m)
      if (t % m == 0) out.push_back({m, t / m});
  return out;
}

namespace {

void check_size(int w, int h) { EV_CHECK(w > 0 && h > 0, "image size must be positive, got %d x %d", w, h); }

void check_candidates(const std::vector<Grid>& c, int tile) {
  EV_CHECK(!c.empty(), "the list of candidate grids is empty");
  EV_CHECK(tile > 0 && tile <= 8192, "tile size must be in 1..8192, got %d", tile);
  for (const Grid& g : c)
    EV_CHECK(g.m >= 1 && g.n >= 1 && g.m <= 1024 && g.n <= 1024 && g.m * g.n <= 1024,
             "invalid candidate grid %dx%d", g.m, g.n);
}

// LLaVA-NeXT's effective and wasted resolution, in the same arithmetic as its Python (float64).
struct Fit {
  int64_t effective, wasted;
};
Fit fit_of(int w0, int h0, Grid g, int tile) {
  const double W = double(tile) * g.m, H = double(tile) * g.n;
  const double scale = std::min(W / w0, H / h0);
  const int64_t dw = int64_t(w0 * scale), dh = int64_t(h0 * scale);
  const int64_t re = std::min(dw * dh, int64_t(w0) * h0);
  return {re, int64_t(W) * int64_t(H) - re};
}

}  // namespace

int64_t effective_resolution(int w, int h, Grid g, int tile) {
  check_size(w, h);
  return fit_of(w, h, g, tile).effective;
}

Grid select_grid_llava_next(int w, int h, const std::vector<Grid>& c, int tile) {
  check_size(w, h);
  check_candidates(c, tile);
  Grid best = c.front();
  int64_t re_max = 0, rw_min = std::numeric_limits<int64_t>::max();
  bool any = false;
  for (const Grid& g : c) {
    Fit f = fit_of(w, h, g, tile);
    if (!any || f.effective > re_max || (f.effective == re_max && f.wasted < rw_min)) {
      re_max = f.effective;
      rw_min = f.wasted;
      best = g;
      any = true;
    }
  }
  return best;
}

Grid select_grid_relaxed(int w, int h, const std::vector<Grid>& c, int tile, double alpha) {
  check_size(w, h);
  check_candidates(c, tile);
  EV_CHECK(alpha >= 0 && std::isfinite(alpha), "alpha must be a finite number >= 0, got %g", alpha);
  std::optional<Grid> best;
  int64_t re_max = 0, rw_min = std::numeric_limits<int64_t>::max();
  for (const Grid& g : c) {
    Fit f = fit_of(w, h, g, tile);
    const double a = alpha * double(re_max);
    if (double(f.effective - re_max) > a || (double(re_max - f.effective) < a && f.wasted < rw_min)) {
      re_max = f.effective;
      rw_min = f.wasted;
      best = g;
    }
  }
  return best ? *best : select_grid_llava_next(w, h, c, tile);
}

Grid select_grid_internvl(int w, int h, const std::vector<Grid>& c, int tile) {
  check_size(w, h);
  check_candidates(c, tile);
  const double aspect = double(w) / h;
  const double area = double(w) * h;
  double best_diff = std::numeric_limits<double>::infinity();
  Grid best{1, 1};
  for (const Grid& g : c) {
    const double diff = std::abs(aspect - double(g.m) / g.n);
    if (diff < best_diff) {
      best_diff = diff;
      best = g;
    } else if (diff == best_diff && area > 0.5 * tile * tile * g.m * g.n) {
      best = g;
    }
  }
  return best;
}

std::pair<int, int> smart_resize_size(int width, int height, const SmartResize& s) {
  EV_CHECK(width > 0 && height > 0, "image size must be positive, got %d x %d", width, height);
  EV_CHECK(s.align > 0 && s.min_pixels > 0 && s.max_pixels >= s.min_pixels, "invalid smart resize %d/%d/%d", s.align,
           s.min_pixels, s.max_pixels);
  const int f = s.align;
  int64_t w, h;
  if (s.float32) {  // mtmd: float arithmetic, std::round (halves away from zero)
    auto round_f = [f](float x) { return int64_t(std::round(x / float(f))) * f; };
    auto floor_f = [f](float x) { return int64_t(std::floor(x / float(f))) * f; };
    auto ceil_f = [f](float x) { return int64_t(std::ceil(x / float(f))) * f; };
    h = std::max<int64_t>(f, round_f(float(height)));
    w = std::max<int64_t>(f, round_f(float(width)));
    if (h * w > s.max_pixels) {
      const float beta = std::sqrt(float(int64_t(height) * width) / float(s.max_pixels));
      h = std::max<int64_t>(f, floor_f(float(height) / beta));
      w = std::max<int64_t>(f, floor_f(float(width) / beta));
    } else if (h * w < s.min_pixels) {
      const float beta = std::sqrt(float(s.min_pixels) / float(int64_t(height) * width));
      h = ceil_f(float(height) * beta);
      w = ceil_f(float(width) * beta);
    }
  } else {  // the processor: Python floats (float64), round() halves to even
    auto round_f = [f](double x) { return int64_t(std::nearbyint(x / f)) * f; };
    h = std::max<int64_t>(f, round_f(height));
    w = std::max<int64_t>(f, round_f(width));
    if (h * w > s.max_pixels) {
      const double beta = std::sqrt(double(height) * width / s.max_pixels);
      h = std::max<int64_t>(f, int64_t(std::floor(height / beta / f)) * f);
      w = std::max<int64_t>(f, int64_t(std::floor(width / beta / f)) * f);
    } else if (h * w < s.min_pixels) {
      const double beta = std::sqrt(double(s.min_pixels) / (double(height) * width));
      h = int64_t(std::ceil(height * beta / f)) * f;
      w = int64_t(std::ceil(width * beta / f)) * f;
    }
  }
  EV_CHECK(w > 0 && h > 0 && w <= 65536 && h <= 65536, "smart resize of %d x %d gives %lld x %lld", width, height,
           (long long)w, (long long)h);
  return {int(w), int(h)};
}

void TilingConfig::validate() const {
  EV_CHECK(tile_size > 0 && tile_size <= 8192, "tile size must be in 1..8192, got %d", tile_size);
  EV_CHECK(max_tiles >= 1 && max_tiles <= 1024, "max tiles must be in 1..1024, got %d", max_tiles);
  EV_CHECK(min_tiles >= 1 && min_tiles <= max_tiles, "min tiles must be in 1..%d, got %d", max_tiles, min_tiles);
  EV_CHECK(alpha >= 0 && std::isfinite(alpha), "alpha must be a finite number >= 0, got %g", alpha);
  if (!candidates.empty()) check_candidates(candidates, tile_size);
  EV_CHECK((strategy != TilingStrategy::Lfm2 && strategy != TilingStrategy::Lfm2Mtmd) || smart.align > 0,
           "tiling %s is LFM2-VL's: it needs a model of that family (clip.projector_type lfm2)",
           tiling_strategy_name(strategy));
  EV_CHECK(strategy != TilingStrategy::Qwen2VL || smart.align > 0,
           "tiling qwen2vl is Qwen2-VL's: it needs a model of that family (clip.projector_type qwen2vl_merger)");
  if (smart.align > 0)
    EV_CHECK(smart.align <= 1024 && smart.patch > 0 && smart.min_pixels > 0 && smart.max_pixels >= smart.min_pixels,
             "invalid smart resize (align %d, pixels %d..%d)", smart.align, smart.min_pixels, smart.max_pixels);
  for (int c = 0; c < 3; ++c)
    EV_CHECK(std::isfinite(mean[c]) && std::isfinite(std[c]) && std[c] != 0,
             "normalisation mean/std for channel %d must be finite with std != 0 (mean %g, std %g)", c,
             double(mean[c]), double(std[c]));
}

std::vector<Grid> TilingConfig::effective_candidates() const {
  return candidates.empty() ? default_grid_candidates(max_tiles, min_tiles) : candidates;
}

ResizeMode TilingConfig::effective_resize() const {
  if (resize != ResizeMode::Auto) return resize;
  return strategy == TilingStrategy::InternVL ? ResizeMode::Stretch : ResizeMode::Pad;
}

ResampleFilter TilingConfig::effective_thumbnail_filter() const { return thumbnail_filter.value_or(filter); }

ResizeMode TilingConfig::effective_thumbnail_resize() const {
  return thumbnail_resize == ResizeMode::Auto ? effective_resize() : thumbnail_resize;
}

std::array<uint8_t, 3> TilingConfig::effective_pad() const {
  if (pad_rgb) return *pad_rgb;
  std::array<uint8_t, 3> p;
  for (int c = 0; c < 3; ++c) {
    const double v = double(mean[c]) * 255.0;
    p[c] = v > 0 ? uint8_t(std::min(v, 255.0)) : 0;  // NaN and negatives: 0
  }
  return p;
}

Grid choose_grid(const TilingConfig& cfg, int w, int h) {
  cfg.validate();
  check_size(w, h);
  switch (cfg.strategy) {
    case TilingStrategy::Relaxed:
      return select_grid_relaxed(w, h, cfg.effective_candidates(), cfg.tile_size, cfg.alpha);
    case TilingStrategy::LlavaNext: return select_grid_llava_next(w, h, cfg.effective_candidates(), cfg.tile_size);
    case TilingStrategy::InternVL: return select_grid_internvl(w, h, cfg.effective_candidates(), cfg.tile_size);
    case TilingStrategy::Single: return {1, 1};
    case TilingStrategy::Idefics3: return idefics3_hf_sizing(w, h, cfg.tile_size, cfg.longest_edge).canvas.grid;
    case TilingStrategy::Idefics3Mtmd: return idefics3_sizing(w, h, cfg.tile_size, cfg.longest_edge).grid;
    case TilingStrategy::InternVLMtmd: return internvl_mtmd_grid(w, h, cfg.effective_candidates(), cfg.tile_size);
    case TilingStrategy::Lfm2: return lfm2_grid(w, h, cfg);
    case TilingStrategy::Lfm2Mtmd: return lfm2_mtmd_grid(w, h, cfg);
    case TilingStrategy::Qwen2VL: return {0, 0};
  }
  return {1, 1};
}

bool has_thumbnail(const TilingConfig& cfg, Grid g) {
  if (cfg.thumbnail == ThumbnailPlacement::None) return false;
  return g.tiles() != 1 || cfg.thumbnail_with_single_tile;  // 0 tiles (idefics3 without a grid): the thumbnail only
}

int total_tiles(const TilingConfig& cfg, Grid g) { return g.tiles() + (has_thumbnail(cfg, g) ? 1 : 0); }

Image fit_to_canvas(const Image& img, int cw, int ch, ResizeMode mode, std::array<uint8_t, 3> pad,
                    ResampleFilter filter, bool float32) {
  EV_CHECK(!img.empty(), "cannot tile an empty image (%d x %d)", img.width, img.height);
  EV_CHECK(cw > 0 && ch > 0, "invalid canvas %d x %d", cw, ch);
  if (mode == ResizeMode::Stretch) return resize_image(img, cw, ch, filter);
  EV_CHECK(mode == ResizeMode::Pad, "fit_to_canvas needs ResizeMode Pad or Stretch");
  const double sw = double(cw) / img.width, sh = double(ch) / img.height;
  int nw, nh;
  if (float32) {
    // llama.cpp's (mtmd) padded resize: one float32 scale, both sides ceil(side·scale), capped.
    const float scale = std::min(float(cw) / float(img.width), float(ch) / float(img.height));
    nw = std::min(int(std::ceil(float(img.width) * scale)), cw);
    nh = std::min(int(std::ceil(float(img.height) * scale)), ch);
  } else if (sw < sh) {  // LLaVA-NeXT resize_and_pad_image, in its float64 arithmetic
    nw = cw;
    nh = int(std::min(std::ceil(img.height * sw), double(ch)));
  } else {
    nh = ch;
    nw = int(std::min(std::ceil(img.width * sh), double(cw)));
  }
  nw = std::max(nw, 1);
  nh = std::max(nh, 1);
  Image canvas(cw, ch);
  for (size_t i = 0; i < canvas.pixels.size(); i += 3) std::memcpy(&canvas.pixels[i], pad.data(), 3);
  Image r = resize_image(img, nw, nh, filter);
  const int ox = (cw - nw) / 2, oy = (ch - nh) / 2;
  for (int y = 0; y < nh; ++y) std::memcpy(canvas.at(ox, oy + y), r.row(y), size_t(nw) * 3);
  return canvas;
}

namespace {

struct NormLut {
  float v[3][256];
  explicit NormLut(const TilingConfig& cfg) {
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) v[c][i] = (float(i) / 255.0f - cfg.mean[c]) / cfg.std[c];
  }
};

// Writes the w × h region at (x0, y0) of src as planar CHW floats.
void emit_tile(const Image& src, int x0, int y0, int w, int h, const NormLut& lut, float* out) {
  const size_t plane = size_t(w) * h;
  for (int y = 0; y < h; ++y) {
    const uint8_t* p = src.at(x0, y0 + y);
    float* r = out + size_t(y) * w;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < w; ++x, p += 3) {
      r[x] = lut.v[0][p[0]];
      g[x] = lut.v[1][p[1]];
      b[x] = lut.v[2][p[2]];
    }
  }
}

}  // namespace

ImageTiler::ImageTiler(const Image& img, const TilingConfig& cfg) : img_(img), cfg_(cfg) {
  EV_CHECK(!img.empty(), "cannot preprocess an empty image (%d x %d)", img.width, img.height);
  grid_ = choose_grid(cfg, img.width, img.height);
  const int t = cfg.tile_size;
  EV_CHECK(int64_t(grid_.m) * t <= 65536 && int64_t(grid_.n) * t <= 65536, "grid %s of tile %d is too large",
           grid_str(grid_).c_str(), t);
  const bool thumb = has_thumbnail(cfg, grid_);
  n_tiles_ = grid_.tiles() + (thumb ? 1 : 0);
  if (thumb) thumbnail_index_ = cfg.thumbnail == ThumbnailPlacement::First ? 0 : grid_.tiles();
  thumb_w_ = thumb_h_ = t;
  if (thumb && cfg.smart.align > 0)
    std::tie(thumb_w_, thumb_h_) = smart_resize_size(img.width, img.height, cfg.smart);
  if (cfg.strategy == TilingStrategy::Idefics3) {
    // The processor's two resizes; the global image is cut from this canvas, also without a grid.
    canvas_ = idefics3_hf_canvas(img, t, cfg.longest_edge, cfg.filter);
  } else if (grid_.tiles() > 0) {
    canvas_ = fit_to_canvas(img, grid_.m * t, grid_.n * t, cfg.effective_resize(), cfg.effective_pad(), cfg.filter,
                            cfg.pad_float32);
  }
}

void ImageTiler::emit(int i, float* out) const {
  EV_CHECK(i >= 0 && i < n_tiles_, "tile %d of an image with %d tiles", i, n_tiles_);
  const NormLut lut(cfg_);
  const int t = cfg_.tile_size;
  if (i == thumbnail_index_) {
    // A 1×1 canvas already is the thumbnail when both are resized the same way.
    const ResizeMode mode = cfg_.effective_thumbnail_resize();
    if (!thumb_is_tile())
      emit_tile(fit_to_canvas(img_, thumb_w_, thumb_h_, mode, cfg_.effective_pad(), cfg_.effective_thumbnail_filter(),
                              cfg_.pad_float32),
                0, 0, thumb_w_, thumb_h_, lut, out);
    else if (cfg_.strategy == TilingStrategy::Idefics3 && !canvas_.empty())
      emit_tile(canvas_.width == t && canvas_.height == t
                    ? canvas_
                    : fit_to_canvas(canvas_, t, t, ResizeMode::Stretch, cfg_.effective_pad(), cfg_.effective_thumbnail_filter()),
                0, 0, t, t, lut, out);
    else if (grid_.tiles() == 1 && mode == cfg_.effective_resize() && cfg_.effective_thumbnail_filter() == cfg_.filter)
      emit_tile(canvas_, 0, 0, t, t, lut, out);
    else
      emit_tile(fit_to_canvas(img_, t, t, mode, cfg_.effective_pad(), cfg_.effective_thumbnail_filter(), cfg_.pad_float32),
                0, 0, t, t, lut, out);
    return;
  }
  const int g = thumbnail_index_ == 0 ? i - 1 : i;
  emit_tile(canvas_, (g % grid_.m) * t, (g / grid_.m) * t, t, t, lut, out);
}

TiledImage preprocess_image(const Image& img, const TilingConfig& cfg) {
  const ImageTiler tiler(img, cfg);
  TiledImage out;
  out.grid = tiler.grid();
  out.tile_size = tiler.tile_size();
  out.n_tiles = tiler.n_tiles();
  out.thumbnail_index = tiler.thumbnail_index();
  out.thumb_w = tiler.thumb_w();
  out.thumb_h = tiler.thumb_h();
  out.data.resize(out.n_tiles > 0 ? out.offset(out.n_tiles - 1) + out.floats(out.n_tiles - 1) : 0);
  for (int i = 0; i < out.n_tiles; ++i) tiler.emit(i, out.data.data() + out.offset(i));
  return out;
}

TilingStatistics tiling_statistics(const TilingConfig& base, int64_t samples, uint64_t seed, SizeDistribution dist,
                                   int min_side, int max_side, int tokens_per_tile) {
  base.validate();
  EV_CHECK(samples > 0, "samples must be positive");
  EV_CHECK(min_side >= 1 && max_side >= min_side, "invalid side range %d..%d", min_side, max_side);
  const std::vector<Grid> cand = base.effective_candidates();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> side(min_side, max_side);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double log_a = std::log(8.0);
  const double log_lo = 2 * std::log(double(min_side)), log_hi = 2 * std::log(double(max_side));

  TilingStatistics s;
  s.samples = samples;
  s.tokens_per_tile = tokens_per_tile;
  double tiles_sum[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < samples; ++i) {
    int w, h;
    if (dist == SizeDistribution::UniformSides) {
      w = side(rng);
      h = side(rng);
    } else {
      const double aspect = std::exp((2 * unit(rng) - 1) * log_a);
      const double area = std::exp(log_lo + (log_hi - log_lo) * unit(rng));
      w = std::max(1, int(std::lround(std::sqrt(area * aspect))));
      h = std::max(1, int(std::lround(std::sqrt(area / aspect))));
    }
    const Grid gr = select_grid_relaxed(w, h, cand, base.tile_size, base.alpha);
    const Grid gl = select_grid_llava_next(w, h, cand, base.tile_size);
    const Grid gi = select_grid_internvl(w, h, cand, base.tile_size);
    const Grid grids[4] = {gr, gl, gi, Grid{1, 1}};
    for (int k = 0; k < 4; ++k) tiles_sum[k] += total_tiles(base, grids[k]);
    auto cmp = [](int a, int b) { return a < b ? 0 : a == b ? 1 : 2; };
    s.vs_llava[cmp(gr.tiles(), gl.tiles())]++;
    s.vs_internvl[cmp(gr.tiles(), gi.tiles())]++;
    s.same_grid_llava += gr == gl;
    s.same_grid_internvl += gr == gi;
    const int64_t re_l = fit_of(w, h, gl, base.tile_size).effective;
    if (re_l > 0)
      s.min_effective_ratio_vs_llava =
          std::min(s.min_effective_ratio_vs_llava, double(fit_of(w, h, gr, base.tile_size).effective) / double(re_l));
  }
  for (int k = 0; k < 4; ++k) {
    s.mean_tiles[k] = tiles_sum[k] / double(samples);
    s.mean_tokens[k] = s.mean_tiles[k] * tokens_per_tile;
  }
  return s;
}

std::string format_tiling_statistics(const TilingStatistics& s) {
  char buf[2048];
  auto pct = [&](int64_t v) { return 100.0 * double(v) / double(s.samples); };
  std::string out;
  auto cell = [&](int64_t v) {
    char c[48];
    std::snprintf(c, sizeof c, "%.1f%% (%lld)", pct(v), (long long)v);
    return std::string(c);
  };
  out += "| relaxed vs | fewer tiles | same tiles | more tiles | identical grid |\n|---|---|---|---|---|\n";
  out += "| llava-next | " + cell(s.vs_llava[0]) + " | " + cell(s.vs_llava[1]) + " | " + cell(s.vs_llava[2]) + " | " +
         cell(s.same_grid_llava) + " |\n";
  out += "| internvl | " + cell(s.vs_internvl[0]) + " | " + cell(s.vs_internvl[1]) + " | " + cell(s.vs_internvl[2]) +
         " | " + cell(s.same_grid_internvl) + " |\n\n";
  std::snprintf(buf, sizeof buf, "Smallest Re(relaxed) / Re(llava-next) over these sizes: %.4f\n\n",
                s.min_effective_ratio_vs_llava);
  out += buf;
  std::snprintf(buf, sizeof buf,
                "| strategy | mean tiles (incl. thumbnail) | mean image tokens (%d per tile) |\n"
                "|---|---|---|\n"
                "| relaxed | %.2f | %.0f |\n| llava-next | %.2f | %.0f |\n| internvl | %.2f | %.0f |\n"
                "| single | %.2f | %.0f |\n",
                s.tokens_per_tile, s.mean_tiles[0], s.mean_tokens[0], s.mean_tiles[1], s.mean_tokens[1],
                s.mean_tiles[2], s.mean_tokens[2], s.mean_tiles[3], s.mean_tokens[3]);
  out += buf;
  return out;
}

}  // namespace edgevlm
