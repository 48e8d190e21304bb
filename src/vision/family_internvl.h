// InternVL 2.5 / 3 (clip.projector_type = internvl): the one place that holds this family's
// conventions, as its authors' code defines them (OpenGVLab's dynamic_preprocess and chat template)
// and as llama.cpp's converter writes the mmproj.
//
// Vision model (InternViT-300M): SigLIP-like blocks with layer scales (v.blk.N.ls1/ls2) and a class
// token (v.class_embd); v.position_embd.weight keeps InternViT's rows: row 0 the class token's, row
// p + 1 patch p's, as the model adds them. llama.cpp's graph appends the class token after the
// patches and adds the rows in order, so there patch p gets row p and the class token the last row:
// `--vit-compat mtmd` reproduces that pairing (for parity with it); by default the authors'.
// The class token is dropped after the blocks.
// Projector: the s×s pixel shuffle (s = clip.vision.projector.scale_factor = 1/downsample_ratio, 2),
// then mm.model.mlp.0 LayerNorm (eps 1e-5) → mm.model.mlp.1 → GELU → mm.model.mlp.3. 448-px tiles, 14-px patches: 32×32 patches →
// 256 tokens per tile.
//
// Image cutting (InternVL's dynamic_preprocess): the grid among all m×n with min ≤ m·n ≤ max tiles
// (clip.vision.preproc_min_tiles / preproc_max_tiles, defaults 1 and 12) whose aspect ratio is
// closest to the image's (ties: the later grid when the image has more than half its pixels; the
// "internvl" strategy of dynamic_resolution.h), the image stretched onto the grid (bicubic), tiles
// in row-major order, then the thumbnail (the whole image stretched to one tile) LAST, only when
// the grid has more than one tile.
//
// llama.cpp's mtmd (the build the parity test runs) cuts InternVL images its own way, selectable
// as `--tiling internvl-mtmd --resample mtmd` (with `--vit-compat mtmd`, exactly mtmd's encoder): an image that fits in one tile is the global image
// alone; otherwise LLaVA-NeXT's select_best_resolution (float32, as mtmd) over the same candidate
// grids, the image resized into the grid keeping its aspect ratio and padded black (llama.cpp's
// clip bicubic), and the global image (stretched, its clip bilinear) last, also after a 1×1 grid.
//
// Prompt: <img> tile … tile [thumbnail] </img>: no marker between tiles. Chat template: chatml.
//
// --tiling relaxed (BlueLM's aspect-ratio rule) applies to this family too.
#pragma once

#include "formats/gguf.h"
#include "vision/dynamic_resolution.h"
#include "vision/mmproj.h"

namespace edgevlm {

inline constexpr const char* kInternVLImageStart = "<img>";
inline constexpr const char* kInternVLImageEnd = "</img>";

// Reads the family's keys into c and sets its conventions (class token, markers, tiling policy
// "internvl", tile counts). Called by MmprojModel::load for projector type internvl.
void internvl_configure(const GGUFFile& f, VisionConfig& c);

// The family's preprocessing on a tiling config built from c (strategy internvl or internvl-mtmd).
void internvl_tiling(const VisionConfig& c, TilingConfig& t);

// mtmd's grid for a width × height image (Grid{0, 0}: the global image alone).
Grid internvl_mtmd_grid(int width, int height, const std::vector<Grid>& candidates, int tile);

// --resample mtmd for this family: llama.cpp's clip bicubic for the grid, bilinear for the global image.
void internvl_mtmd_resampling(TilingConfig& t);

}  // namespace edgevlm
