// Dynamic resolution: the one place where an image's tiling is decided and carried out.
//
// Conventions (everything else in the vision path relies on them):
// - A grid m×n is m tiles WIDE and n tiles HIGH; it covers (m·tile) × (n·tile) pixels. The paper's
//   "1:2 (384×768)" is Grid{1, 2}; its 768×1536 image on "2:4" is Grid{2, 4}.
// - Tiles are emitted in row-major order (left to right, then top to bottom): tile (col, row) has
//   index row·m + col. The thumbnail (global view: the whole image on one tile) is placed first or
//   last (ThumbnailPlacement; default last, as InternVL does), and by default it is left out when the
//   grid is 1×1, because that single tile already is the whole image (InternVL's rule).
// - Output tiles are planar CHW float32, tile_size × tile_size per channel, channels R, G, B,
//   normalised as (v/255 − mean[c]) / std[c].
//
// Strategies (selectable by name: "relaxed", "llava-next", "internvl", "single"):
// - llava-next: LLaVA-NeXT's select_best_resolution. For each candidate (W, H) = tile·(m, n):
//   scale = min(W/W0, H/H0); Re = min(int(W0·scale)·int(H0·scale), W0·H0) (effective pixels);
//   Rw = W·H − Re (wasted pixels). Keep the largest Re, ties broken by the smaller Rw; on an exact
//   tie the earlier candidate stays.
// - relaxed: the paper's Algorithm 1 (BlueLM-V-3B), the same scan with a relaxed update: take (m, n) if
//   (Re − Re_max) > α·Re_max, or ((Re_max − Re) < α·Re_max and Rw < Rw_min); then Re_max = Re and
//   Rw_min = Rw. α defaults to 0.1. A larger grid must gain more than α in effective resolution, while
//   a grid within α that wastes less is preferred, so it picks fewer tiles for near-fitting images.
//   If no candidate is ever taken (every Re is 0: an image so thin that it rounds to zero pixels on
//   every grid) the llava-next choice is used.
// - internvl: InternVL-1.5's find_closest_aspect_ratio: the candidate whose m/n is closest to W0/H0;
//   on an exact tie in |difference| the later candidate replaces the current one only if
//   W0·H0 > 0.5·tile²·m·n (enough pixels to fill more tiles).
// - single: always 1×1 (the candidates are ignored).
// - idefics3: SmolVLM's processor (src/vision/family_idefics3.h): the longest edge resized to
//   longest_edge, then stretched to whole tiles (the candidates are ignored; the canvas is made by
//   the family, the thumbnail is cut from it); Grid{0, 0} (the thumbnail, i.e. the global image,
//   only) when that is one tile or longest_edge ≤ 0.
// - idefics3-mtmd: llama.cpp mtmd's SmolVLM rule: the longest edge scaled to longest_edge in
//   float32, each side rounded up to whole tiles, the image padded onto it.
// - internvl-mtmd: llama.cpp mtmd's InternVL rule (src/vision/family_internvl.h): Grid{0, 0} when
//   the image fits in one tile, else LLaVA-NeXT's choice in float32.
// - lfm2, lfm2-mtmd: LFM2-VL's processor and mtmd's version of it (src/vision/family_lfm2.h):
//   Grid{0, 0} (the smart-resized image alone) unless the image is too large, else InternVL's
//   closest-aspect rule over 2..10 tiles of 512 px; the thumbnail has its own smart-resized size
//   (TilingConfig::smart).
// - qwen2vl: Qwen2-VL's native resolution (src/vision/family_qwen2vl.h): Grid{0, 0} always, the
//   image as a thumbnail of its own smart-resized size.
//
// Candidate order (Algorithm 1 is order-dependent; llava-next and internvl only on exact ties):
// default_grid_candidates() lists every m×n with min_tiles ≤ m·n ≤ max_tiles in ascending m·n, then
// ascending m (so 1×2 before 2×1). Ascending tile count is the order of InternVL's target_ratios
// (whose tie rule relies on it), and it makes Algorithm 1 a scan from cheap to expensive grids
// where each step up in tiles must pay for itself with > α more effective resolution; with α = 0 it
// then reproduces llava-next exactly. Other orders give other choices (100×1205: 1×4 scanning up,
// 1×3 scanning down); docs/TILING.md measures the effect (descending: 0.5% fewer tiles on average).
// User-supplied candidates are scanned in the order given.
//
// Preprocessing each strategy implies (ResizeMode::Auto):
// - relaxed, llava-next, single: Pad. LLaVA-NeXT's resize_and_pad_image: scale to fit inside the
//   grid keeping the aspect ratio (the side that binds gets exactly the grid size, the other
//   min(ceil(side·scale), grid side)), bicubic as PIL, paste centred ((W−w)/2, (H−h)/2 floored) on a
//   canvas of pad colour, then cut. Relaxed uses Pad because its criterion is defined by it: Re and
//   Rw are exactly the image pixels and the padding pixels of this resize, so a grid it picks for low
//   waste is one whose padding really is small. The thumbnail is the image resized-and-padded to one
//   tile. (LLaVA-NeXT's original squashes its base image to a square and pads with black; we keep the
//   aspect ratio in the thumbnail too, and pad with the normalisation mean, which normalises to ~0.)
// - internvl: Stretch. InternVL's dynamic_preprocess: resize to exactly (m·tile) × (n·tile), ignoring
//   the aspect ratio (its matching chose the grid closest in aspect, so distortion is small), then
//   cut; the thumbnail is the image stretched to one tile.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vision/image.h"
#include "vision/resize.h"

namespace edgevlm {

enum class TilingStrategy { Relaxed, LlavaNext, InternVL, Single, Idefics3, InternVLMtmd, Idefics3Mtmd, Lfm2, Lfm2Mtmd, Qwen2VL };
// Accepts "relaxed", "llava-next" (also "llava_next", "llavanext"), "internvl" (also "internvl-1.5"),
// "single", "idefics3"; throws edgevlm::Error listing the valid names otherwise.
TilingStrategy parse_tiling_strategy(std::string_view name);
const char* tiling_strategy_name(TilingStrategy s);

struct Grid {
  int m = 1;  // tiles across (width)
  int n = 1;  // tiles down (height)
  int tiles() const { return m * n; }
  bool operator==(const Grid&) const = default;
};
std::string grid_str(Grid g);  // "2x4" (m x n)

enum class ResizeMode { Auto, Pad, Stretch };
enum class ThumbnailPlacement { None, First, Last };

// Every m×n with min_tiles ≤ m·n ≤ max_tiles, in the documented order (ascending m·n, then m).
std::vector<Grid> default_grid_candidates(int max_tiles, int min_tiles = 1);

// LLaVA-NeXT's effective resolution Re of a grid for a width × height image (see above).
int64_t effective_resolution(int width, int height, Grid g, int tile_size);

Grid select_grid_relaxed(int width, int height, const std::vector<Grid>& candidates, int tile_size,
                         double alpha);
Grid select_grid_llava_next(int width, int height, const std::vector<Grid>& candidates, int tile_size);
Grid select_grid_internvl(int width, int height, const std::vector<Grid>& candidates, int tile_size);

// A thumbnail of its own size (LFM2-VL's smart resize): the aspect ratio kept, each side a multiple
// of align, the area within [min_pixels, max_pixels]; patch is the encoder's (the processor's
// smallest side). align 0: the thumbnail is a tile.
struct SmartResize {
  int align = 0, min_pixels = 0, max_pixels = 0, patch = 0;
  bool float32 = false;  // llama.cpp mtmd's float32 arithmetic (std::round: halves away from zero),
                         // else the processors' Python floats (round(): halves to even)
};
// The smart resize of a width × height image (transformers' smart_resize, shared by Qwen2-VL and
// LFM2-VL): {w, h}, multiples of s.align, the aspect ratio kept, sides rounded to the nearest
// multiple first, then scaled down (floor) or up (ceil) into [min_pixels, max_pixels].
std::pair<int, int> smart_resize_size(int width, int height, const SmartResize& s);

struct TilingConfig {
  TilingStrategy strategy = TilingStrategy::Relaxed;
  int tile_size = 384;
  int max_tiles = 16;   // grid tiles, the thumbnail not counted (the paper: up to 4×4)
  int min_tiles = 1;
  double alpha = 0.1;   // relaxed only
  std::vector<Grid> candidates;  // empty: default_grid_candidates(max_tiles, min_tiles)
  ThumbnailPlacement thumbnail = ThumbnailPlacement::Last;
  bool thumbnail_with_single_tile = false;  // add the thumbnail even to a 1×1 grid
  ResizeMode resize = ResizeMode::Auto;
  std::optional<std::array<uint8_t, 3>> pad_rgb;  // unset: int(255·mean), as LLaVA's expand2square
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};  // SigLIP's
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
  int longest_edge = 0;                            // idefics3 only
  ResampleFilter filter = ResampleFilter::Bicubic;  // resizes onto the grid's canvas (and the thumbnail)
  std::optional<ResampleFilter> thumbnail_filter;   // unset: filter
  // Pad's arithmetic: false, LLaVA-NeXT's float64 (the binding side exactly the canvas); true,
  // llama.cpp mtmd's float32 (one scale, both sides ceil(side·scale) capped: 750·(256/1000)f → 193).
  bool pad_float32 = false;
  ResizeMode thumbnail_resize = ResizeMode::Auto;  // Auto: as the grid's canvas
  SmartResize smart;                               // lfm2, qwen2vl only

  void validate() const;  // throws edgevlm::Error naming the bad field
  std::vector<Grid> effective_candidates() const;
  ResizeMode effective_resize() const;
  ResizeMode effective_thumbnail_resize() const;
  ResampleFilter effective_thumbnail_filter() const;
  std::array<uint8_t, 3> effective_pad() const;
};

// The grid cfg.strategy picks for a width × height image (validates cfg and the size).
Grid choose_grid(const TilingConfig& cfg, int width, int height);
// Whether a thumbnail goes with this grid, and the total number of tiles sent to the ViT.
bool has_thumbnail(const TilingConfig& cfg, Grid g);
int total_tiles(const TilingConfig& cfg, Grid g);

// The image resized onto the grid's canvas ((m·tile) × (n·tile)) as the mode says (Pad or
// Stretch; Auto is not accepted here). For a 1×1 grid this is also the thumbnail.
Image fit_to_canvas(const Image& img, int canvas_w, int canvas_h, ResizeMode mode,
                    std::array<uint8_t, 3> pad_rgb, ResampleFilter filter = ResampleFilter::Bicubic,
                    bool float32 = false);

struct TiledImage {
  Grid grid;
  int tile_size = 0;
  int n_tiles = 0;           // grid tiles + thumbnail
  int thumbnail_index = -1;  // -1 when there is none
  int thumb_w = 0, thumb_h = 0;  // the thumbnail's size in pixels (a tile's unless TilingConfig::smart)
  std::vector<float> data;   // the tiles in order, each 3 × height × width, planar CHW
  size_t tile_floats() const { return size_t(3) * tile_size * tile_size; }
  size_t floats(int i) const { return i == thumbnail_index ? size_t(3) * thumb_w * thumb_h : tile_floats(); }
  size_t offset(int i) const {
    return size_t(i) * tile_floats() + (thumbnail_index >= 0 && i > thumbnail_index ? floats(thumbnail_index) - tile_floats() : 0);
  }
  const float* tile(int i) const { return data.data() + offset(i); }
  // Index of the grid tile at column col, row row.
  int grid_tile_index(int col, int row) const {
    return (thumbnail_index == 0 ? 1 : 0) + row * grid.m + col;
  }
};

// Chooses the grid, resizes (bicubic, bit-exact with PIL), pads or stretches, cuts the tiles,
// adds the thumbnail and normalises.
TiledImage preprocess_image(const Image& img, const TilingConfig& cfg);

// preprocess_image in two steps, so that tiles can be cut one at a time: the pipelined encoder
// (src/vision/vit.h) cuts and normalises the next ViT batch while the current one runs.
// The constructor chooses the grid and resizes onto the canvas; emit(i) writes tile i (TiledImage
// order, 3 × T × T normalised) and resizes the thumbnail when it is the one asked for. Calls for
// different tiles may run concurrently. Keeps a reference to img, which must outlive the tiler.
class ImageTiler {
 public:
  ImageTiler(const Image& img, const TilingConfig& cfg);
  Grid grid() const { return grid_; }
  int tile_size() const { return cfg_.tile_size; }
  int n_tiles() const { return n_tiles_; }
  int thumbnail_index() const { return thumbnail_index_; }
  size_t tile_floats() const { return size_t(3) * cfg_.tile_size * cfg_.tile_size; }
  // The thumbnail's size: a tile's, or its own (TilingConfig::smart).
  int thumb_w() const { return thumb_w_; }
  int thumb_h() const { return thumb_h_; }
  bool thumb_is_tile() const { return thumb_w_ == cfg_.tile_size && thumb_h_ == cfg_.tile_size; }
  void emit(int i, float* out) const;  // tile i: 3 × its height × its width

 private:
  const Image& img_;
  TilingConfig cfg_;
  Grid grid_;
  int n_tiles_ = 0, thumbnail_index_ = -1, thumb_w_ = 0, thumb_h_ = 0;
  Image canvas_;
};

// ---- Statistics: how the strategies compare over many random image sizes.
enum class SizeDistribution {
  UniformSides,       // width and height independently uniform in [min_side, max_side]
  LogUniformAspect,   // aspect ratio log-uniform in [1/8, 8], pixel count log-uniform in [min_side², max_side²]
};
struct TilingStatistics {
  int64_t samples = 0;
  int tokens_per_tile = 0;
  // relaxed's grid tile count compared with the other strategy's, per image: fewer, same, more;
  // and how often the grid itself is identical.
  int64_t vs_llava[3] = {0, 0, 0};
  int64_t vs_internvl[3] = {0, 0, 0};
  int64_t same_grid_llava = 0, same_grid_internvl = 0;
  // Smallest ratio Re(relaxed grid) / Re(llava-next grid) seen: how much resolution relaxed gave up.
  double min_effective_ratio_vs_llava = 1.0;
  // Mean tiles (grid + thumbnail) and image tokens per image, for relaxed, llava-next, internvl, single.
  double mean_tiles[4] = {0, 0, 0, 0};
  double mean_tokens[4] = {0, 0, 0, 0};
};
// Deterministic for a given seed. base supplies tile size, candidates, α, thumbnail rule.
TilingStatistics tiling_statistics(const TilingConfig& base, int64_t samples, uint64_t seed,
                                   SizeDistribution dist, int min_side, int max_side,
                                   int tokens_per_tile);
std::string format_tiling_statistics(const TilingStatistics& s);  // a Markdown table

}  // namespace edgevlm
