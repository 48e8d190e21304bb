// SigLIP ViT forward (docs/FORMAT.md §1, "Forward pass of one tile"), batched over tiles:
//   patch embedding as one matrix product over unfolded patches (the Conv2d of stride P),
//   + learned position embeddings, L × pre-LN blocks [LN1 → bidirectional MHA → +residual,
//   LN2 → Linear → gelu_tanh → Linear → +residual], post-LN.
// All tiles of a batch go through each weight matrix together (B·N activation rows), which is
// the paper's batched patch encoding: the weights are read once per batch, not once per tile.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "vision/mmproj.h"

namespace edgevlm {

// Tiles in the layout of TiledImage::data: n_tiles × 3 × T × T, planar CHW, normalised.
// Patch p = py·(T/P) + px becomes row p of `out` (3·P·P values in (c, ky, kx) order), the order of
// v.patch_embd.weight's rows. When P does not divide T the last T % P pixel rows and columns are
// left out, as Conv2d with stride P does.
void unfold_patches(const float* tile_chw, int tile_size, int patch_size, float* out);

// Tiles per set of matmuls when the caller does not say: the paper's fastest batch on the phone.
constexpr int kDefaultVitBatch = 4;

struct VitTimings {
  double patch_embed_ms = 0;  // unfold + patch matmul + position embeddings
  double blocks_ms = 0;       // transformer blocks + post-LN
};

// Runs the ViT over n_tiles tiles, `batch` tiles at a time (batch < 1: all at once).
// Returns n_tiles × n_patches × n_embd floats. Throws edgevlm::Error when n_tiles < 0.
std::vector<float> vit_forward(const MmprojModel& m, const float* tiles, int n_tiles, ThreadPool& pool,
                               int batch = kDefaultVitBatch, VitTimings* timings = nullptr);

}  // namespace edgevlm
