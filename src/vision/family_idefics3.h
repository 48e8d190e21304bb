// SmolVLM, SmolVLM2 and Idefics3 (clip.projector_type = idefics3): the one place that holds this
// family's conventions, as its authors' processor defines them (transformers' Idefics3ImageProcessor
// and Idefics3Processor) and as llama.cpp's mtmd implements them for GGUF pairs. The pipeline
// (src/engine/vlm.h) encodes, projects and lays out the prompt; this file only says how.
//
// Image cutting, by default as the authors' processor does (transformers' Idefics3ImageProcessor,
// strategy "idefics3"; every resize PIL's Lanczos, bit-exact):
// - resize keeping the aspect ratio so that the longest edge is `longest_edge` (the other side
//   int(edge / aspect), rounded up to even; small images are enlarged too);
// - resize (stretch) that image to whole tiles (resize_for_vision_encoder: the longer side rounded
//   up to a multiple of the tile, the other side int(longer / aspect) rounded up to one);
// - cut the tiles row-major; the global image is that resized image stretched to one tile, LAST;
//   when it is a single tile already, no grid (the global image alone).
// llama.cpp's mtmd cuts differently (strategy "idefics3-mtmd", `--tiling idefics3-mtmd`, with
// `--resample mtmd` pixel-identical to the peer build of tests/vlm_family_parity):
// - refined size: scale the image so that its longest edge is `longest_edge`
//   (clip.vision.preproc_image_size: the processor's size.longest_edge; SmolVLM-256M/500M 2048 at
//   512-px tiles, SmolVLM2-2.2B 1536 at 384-px tiles), keeping the aspect ratio (float32, as mtmd;
//   small images are enlarged too), then round each side UP to a multiple of the tile size;
// - grid: refined / tile (cols × rows); tiles are cut from the image resized into the refined canvas
//   keeping its aspect ratio (the other side ceil(side·scale), centred, padded black: mtmd's
//   refined-image padding), in row-major order;
// - resampling: Lanczos by default (recent llama.cpp uses Lanczos for this family too); the mtmd
//   build used as the parity peer (@fugood/llama.node 1.7.15) resizes the grid's canvas with its
//   clip bicubic and the global image with its clip bilinear: `--resample mtmd`;
// - the global image: the whole image stretched to one tile, LAST (after the grid tiles), also for a
//   1×1 grid;
// - a file without clip.vision.preproc_image_size (converted before the key existed) gets no grid:
//   the global image only, exactly as mtmd does with it.
// Normalisation: clip.vision.image_mean / image_std (SmolVLM: 0.5, 0.5). Pixel shuffle: the s×s
// merge of src/vision/projector.h with s = clip.vision.projector.scale_factor (4 for 256M/500M at
// 512 px: 32×32 patches → 64 tokens per tile; 3 for 2.2B at 384 px: 27×27 → 81), then
// mm.model.fc (one Linear, no bias).
//
// Prompt (mtmd's MTMD_SLICE_TMPL_IDEFICS3, after transformers' _prompt_split_image), for a grid of
// C columns and R rows:
//   <fake_token_around_image><row_1_col_1> tile … <fake_token_around_image><row_1_col_C> tile \n
//   …                                                                         (a "\n" after every
//   <fake_token_around_image><row_R_col_1> tile … <fake_token_around_image><row_R_col_C> tile   row but the last)
//   \n\n <fake_token_around_image> <global-img> global image <fake_token_around_image>
// The per-tile marker is tokenised as text with special tokens; "\n\n", "\n" and the global-image
// markers are single tokens of the vocabulary (SmolLM2's BPE has "\n" and "\n\n").
// Chat template: smolvlm (src/model/chat_template.h).
//
// BlueLM's relaxed aspect-ratio tiling (--tiling relaxed) applies to this family too: its grid,
// resized and padded the same way, with the same markers and the global image last.
#pragma once

#include <string>

#include "formats/gguf.h"
#include "vision/dynamic_resolution.h"
#include "vision/mmproj.h"

namespace edgevlm {

inline constexpr const char* kIdefics3FakeToken = "<fake_token_around_image>";
inline constexpr const char* kIdefics3GlobalImg = "<global-img>";
inline constexpr const char* kIdefics3TileMarker = "<fake_token_around_image><row_%d_col_%d>";  // row, col (1-based)

struct Idefics3Sizing {
  int refined_w = 0, refined_h = 0;  // 0 × 0 when there is no grid
  Grid grid{0, 0};                   // cols × rows
};
// mtmd's refined size and grid of a width × height image (longest_edge ≤ 0: no grid).
Idefics3Sizing idefics3_sizing(int width, int height, int tile, int longest_edge);

// The authors' sizes: the longest-edge resize (w1 × h1) and the tile-multiple canvas (refined_w ×
// refined_h, grid = refined / tile; Grid{0, 0} when the canvas is one tile or longest_edge ≤ 0).
struct Idefics3HfSizing {
  int w1 = 0, h1 = 0;
  Idefics3Sizing canvas;
};
Idefics3HfSizing idefics3_hf_sizing(int width, int height, int tile, int longest_edge);

// The authors' canvas of an image (the two Lanczos resizes; empty when there is no grid).
Image idefics3_hf_canvas(const Image& img, int tile, int longest_edge, ResampleFilter filter);

// Reads the family's keys into c and sets its conventions (markers, tiling policy "idefics3",
// the most tiles a grid can have). Called by MmprojModel::load for projector type idefics3.
void idefics3_configure(const GGUFFile& f, VisionConfig& c);

// The family's preprocessing on a tiling config built from c: the idefics3 grid rule (unless the
// user chose another strategy), the global image stretched and placed last even for one tile,
// black padding.
void idefics3_tiling(const VisionConfig& c, TilingConfig& t);

// --resample mtmd: llama.cpp's mtmd resampling for this family (canvas: llama.cpp's clip bicubic;
// global image: its clip bilinear), as in the @fugood/llama.node 1.7.15 build.
void idefics3_mtmd_resampling(TilingConfig& t);

}  // namespace edgevlm
