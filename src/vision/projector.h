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
#pragma once

#include <vector>

#include "core/thread_pool.h"
#include "vision/mmproj.h"

namespace edgevlm {

// h: n_tiles × side² × d (token (x, y) of a tile at row y·side + x). out: n_tiles × ms² × (s²·d),
// ms = ceil(side / s).
void merge_patches(const float* h, int n_tiles, int side, int d, int s, float* out);

// ViT output (n_tiles × n_patches × n_embd) → n_tiles × tokens_per_tile × projection_dim.
std::vector<float> project_tiles(const MmprojModel& m, const float* vit_out, int n_tiles, ThreadPool& pool);

}  // namespace edgevlm
