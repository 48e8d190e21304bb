// SigLIP ViT forward (docs/FORMAT.md §1, "Forward pass of one tile"), batched over tiles:
//   patch embedding as one matrix product over unfolded patches (the Conv2d of stride P),
//   + learned position embeddings, L × pre-LN blocks [LN1 → bidirectional MHA → +residual,
//   LN2 → Linear → gelu_tanh → Linear → +residual], post-LN.
// All tiles of a batch go through each weight matrix together (B·N activation rows), which is
// the paper's batched patch encoding: the weights are read once per batch, not once per tile.
// Pipelined encoding (VitOptions::pipeline) overlaps the preparation of the next batch with the
// blocks of the current one.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "vision/mmproj.h"

namespace edgevlm {

// The patch grid of an image the ViT encodes: w patches across, h down (w·P × h·P pixels).
struct PatchGrid {
  int w = 0, h = 0;
  int64_t n() const { return int64_t(w) * h; }
  bool operator==(const PatchGrid&) const = default;
};

// A tile of width × height pixels, planar CHW, normalised (TiledImage::data's layout). Patch
// p = py·(width/P) + px becomes row p of `out` (3·P·P values in (c, ky, kx) order), the order of
// v.patch_embd.weight's rows. When P does not divide a side the last side % P pixel rows or
// columns are left out, as Conv2d with stride P does.
void unfold_patches(const float* tile_chw, int width, int height, int patch_size, float* out);

// Width and height in pixels of a tile of grid g: the file's tile (image_size, which may have a
// margin the patches do not cover: so400m's 384 = 27·14 + 6) for its own grid, else g·P.
std::pair<int, int> tile_pixels(const VisionConfig& c, PatchGrid g);

// Position embeddings (side × side rows of d, row-major) resized to a w × h grid: PyTorch's
// F.interpolate(mode="bilinear", align_corners=False, antialias=True), which SigLIP2's NaFlex
// embeddings and llama.cpp's lfm2 graph both use (when shrinking, the triangle filter widens to
// the scale: antialiasing). Returns w·h rows of d.
std::vector<float> interpolate_positions(const float* table, int side, int d, int w, int h);

// Tiles per set of matmuls when the caller does not say: the paper's fastest batch on the phone.
constexpr int kDefaultVitBatch = 4;
// Whether the next batch is prepared while the current one runs (see VitOptions::pipeline).
constexpr bool kDefaultVitPipeline = true;

struct VitOptions {
  // Implicit from a batch size, so that vit_forward(m, tiles, n, pool, 2) reads as before.
  VitOptions(int batch_ = kDefaultVitBatch, bool pipeline_ = kDefaultVitPipeline)  // NOLINT
      : batch(batch_), pipeline(pipeline_) {}
  int batch;  // tiles per batch; < 1: all at once
  // The paper's pipeline: while the pool runs the transformer blocks of batch k, one extra thread
  // prepares batch k+1 (its tiles' pixels from the TileSource, unfold, patch embedding, position
  // embeddings). Off: each batch is prepared on the pool, then run. Same results either way.
  bool pipeline;
  // The patch grid of every tile of this call; {0, 0}: the model's square tile. Another grid needs
  // VisionConfig::interpolate_positions (LFM2-VL's tiles and its smart-resized image).
  PatchGrid patches;
};

struct VitTimings {
  double prepare_ms = 0;  // tile pixels + unfold + patch matmul + position embeddings, all batches
  double blocks_ms = 0;   // transformer blocks + post-LN, all batches
  double wall_ms = 0;     // the whole call
  int n_batches = 0;
  bool pipelined = false;  // a producer thread ran (pipeline asked for and more than one batch)
  // Time the overlap saved: the serial sum of the stages minus the wall time (≈ 0 when serial).
  double hidden_ms() const { return prepare_ms + blocks_ms > wall_ms ? prepare_ms + blocks_ms - wall_ms : 0; }
};

// Supplies tile i's normalised pixels (3 × H × W, planar CHW, the size VitOptions::patches says): returns a pointer to them, either
// into memory of its own or into `scratch` (room for one tile) after writing them there. Called
// once per tile, from the pool's threads or the producer thread, possibly concurrently for
// different tiles. May throw; vit_forward then rethrows after stopping the producer.
using TileSource = std::function<const float*(int tile, float* scratch)>;

// Runs the ViT over n_tiles tiles, opt.batch tiles at a time. Returns n_tiles × patches × n_embd
// floats. Throws edgevlm::Error when n_tiles < 0 or the patch grid cannot be encoded.
std::vector<float> vit_forward(const MmprojModel& m, const TileSource& tiles, int n_tiles, ThreadPool& pool,
                               VitOptions opt = {}, VitTimings* timings = nullptr);
// Tiles already in memory, in the layout of TiledImage::data.
std::vector<float> vit_forward(const MmprojModel& m, const float* tiles, int n_tiles, ThreadPool& pool,
                               VitOptions opt = {}, VitTimings* timings = nullptr);

}  // namespace edgevlm
