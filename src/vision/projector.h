// Token down-sampler and projector: ViT tokens of a tile → LLM embeddings.
//
// Merge (pixel unshuffle, llama.cpp's build_patch_merge_permute, used by both projector types):
// the side×side token grid, zero-padded on the right and bottom to a multiple of s, becomes a
// (side/s)×(side/s) grid (27×27 → 14×14 for s = 2); merged token (mx, my), row-major, is the
// concatenation over dy = 0..s−1 (outer), dx = 0..s−1 (inner) of h(s·mx + dx, s·my + dy): for
// s = 2, top-left, top-right, bottom-left, bottom-right. This is also the token order of
// idefics3 (HF Idefics3's pixel_shuffle on a square grid gives the same permutation).
//
// Projection:  lfm2      LayerNorm(eps 1e-5, mm.input_norm) → mm.1 → gelu_tanh → mm.2
//              idefics3  mm.model.fc (one Linear)
//              gemma3    (after a s×s average pool instead of the merge) RMSNorm → mm.input_projection
#pragma once

#include <vector>

#include "core/thread_pool.h"
#include "vision/mmproj.h"
#include "vision/vit.h"

namespace edgevlm {

// h: n_tiles × side² × d (token (x, y) of a tile at row y·side + x). out: n_tiles × ms² × (s²·d),
// ms = ceil(side / s).
void merge_patches(const float* h, int n_tiles, int side, int d, int s, float* out);
// The same on a w × h grid (token (x, y) at row y·w + x): ceil(w/s) × ceil(h/s) merged tokens,
// row-major, each padded with zeros past the right and bottom edges (llama.cpp's order on
// non-square grids too).
void merge_patches(const float* h, int n_tiles, PatchGrid g, int d, int s, float* out);

// Gemma 3's merge: the mean of each s × s block of tokens (g's sides multiples of s; llama.cpp's
// pool_2d): (w/s) × (h/s) tokens of d, row-major.
void average_pool(const float* h, int n_tiles, PatchGrid g, int d, int s, float* out);

// The merged tokens across × down of a tile of patch grid g ({0, 0}: the model's tile), and how
// many (tokens_per_tile() for the model's tile).
PatchGrid merged_grid(const VisionConfig& c, PatchGrid g);
int merged_tokens(const VisionConfig& c, PatchGrid g);

// ViT output (n_tiles × patches × n_embd) → n_tiles × merged_tokens × projection_dim, for tiles of
// patch grid g ({0, 0}: the model's square tile).
std::vector<float> project_tiles(const MmprojModel& m, const float* vit_out, int n_tiles, ThreadPool& pool,
                                 PatchGrid g = {});

}  // namespace edgevlm
