// LFM2-VL (clip.projector_type = lfm2, files from llama.cpp's converter): the one place that holds
// this family's conventions, as its authors' processor defines them (transformers'
// Lfm2VlImageProcessor and Lfm2VlProcessor) and as llama.cpp's mtmd implements them for GGUF pairs.
// (edgevlm's own lfm2-projector files, the nano model, carry edgevlm.* keys and keep their tiling.)
//
// Vision model: SigLIP2 NaFlex. Its position embeddings are a 16×16 grid (clip.vision.image_size
// 256, patch 16) resized to each image's patch grid (bilinear with antialiasing:
// VisionConfig::interpolate_positions), so the encoder takes images of any size that is a multiple
// of the patch. Projector: 2×2 pixel unshuffle → mm.input_norm (LayerNorm, optional) → mm.1 → GELU →
// mm.2 (src/vision/projector.h).
//
// Image cutting (strategy "lfm2", the authors' processor):
// - smart resize: keep the aspect ratio, each side a multiple of f = patch·scale_factor (32), the
//   area between 64 and 256 tokens (64·f² … 256·f² pixels); sides rounded to the nearest multiple
//   first (Python's round: halves to even), scaled down (floor) or up (ceil) when out of range;
// - an image is "too large" when its sides rounded to f give more than 2 × 256 tokens' pixels; then
//   it is also cut into 512-px tiles: the grid among m×n with 2 ≤ m·n ≤ 10 whose aspect ratio is
//   closest to the image's (InternVL's rule and tie-break), the image stretched onto the grid
//   (bilinear, antialiased), tiles row-major, then the smart-resized image as the thumbnail, LAST;
// - otherwise the smart-resized image alone.
// llama.cpp's mtmd ("lfm2-mtmd", `--tiling lfm2-mtmd`): the same smart resize in float32 (halves
// away from zero), "too large" when a side exceeds 2 × 512 px, the candidate grids in its own order
// (std::sort by tile count), the image resized into the grid keeping its aspect ratio and padded
// black (llama.cpp's clip bilinear), the thumbnail stretched with the same bilinear.
// Normalisation: clip.vision.image_mean / image_std (0.5, 0.5).
//
// Prompt (Lfm2VlProcessor): <|image_start|> [<|img_row_R_col_C|> tile]… <|img_thumbnail|> thumbnail
// <|image_end|>; an image that is not cut: <|image_start|> image <|image_end|>. Chat template: lfm2.
//
// --tiling relaxed / llava-next / internvl apply too: square tiles of the file's image_size, the
// thumbnail a tile, the same markers.
#pragma once

#include <vector>

#include "formats/gguf.h"
#include "vision/dynamic_resolution.h"
#include "vision/mmproj.h"

namespace edgevlm {

inline constexpr int kLfm2TileSize = 512;
inline constexpr int kLfm2MinTiles = 2, kLfm2MaxTiles = 10;
inline constexpr int kLfm2MinImageTokens = 64, kLfm2MaxImageTokens = 256;
inline constexpr float kLfm2MaxPixelsTolerance = 2.0f;

// Reads the family's conventions into c (markers, tiling policy "lfm2", position interpolation).
// Called by MmprojModel::load for projector type lfm2.
void lfm2_configure(const GGUFFile& f, VisionConfig& c);

// The family's preprocessing on a tiling config built from c (strategy lfm2 or lfm2-mtmd).
void lfm2_tiling(const VisionConfig& c, TilingConfig& t);


// The grid (Grid{0, 0}: the image is not cut) under the processor's rule or mtmd's.
Grid lfm2_grid(int width, int height, const TilingConfig& t);
Grid lfm2_mtmd_grid(int width, int height, const TilingConfig& t);

}  // namespace edgevlm
