// Gemma 3 (clip.projector_type = gemma3): the one place that holds this family's conventions, as
// its authors' processor defines them (transformers' Gemma3ImageProcessor and Gemma3Processor)
// and as llama.cpp's mtmd implements them for GGUF pairs.
//
// Vision model: SigLIP so400m at 896 px (patch 14: 64 × 64 patches). Projector: a 4 × 4 average
// pool of the patch grid (clip.vision.projector.scale_factor when present, as llama.cpp reads it;
// 4 otherwise) → 16 × 16 = 256 tokens, RMSNorm (mm.soft_emb_norm, eps of the ViT) →
// mm.input_projection (src/vision/projector.h).
// Image: the whole image stretched to one 896-px tile (the processor's bilinear; pan-and-scan, off
// by default in the processor, is not done), normalised by the file's mean/std (0.5, 0.5).
// Prompt: <start_of_image> 256 positions <end_of_image>, as mtmd lays it out (the processor also
// puts "\n\n" before and after). Chat template: gemma.
// Decoder: the image's positions attend to each other both ways (llama.cpp decodes the image batch
// with non-causal attention; transformers' Gemma 3 masks it the same way): ImageEmbeddings::bidirectional.
// llama.cpp's mtmd resizes differently: the aspect ratio kept, padded black, its clip bilinear;
// `--resample mtmd` reproduces it.
#pragma once

#include "formats/gguf.h"
#include "vision/dynamic_resolution.h"
#include "vision/mmproj.h"

namespace edgevlm {

inline constexpr int kGemma3PoolSize = 4;

// Reads the family's conventions into c (one tile, markers, bidirectional image attention).
// Called by MmprojModel::load for projector type gemma3.
void gemma3_configure(const GGUFFile& f, VisionConfig& c);

// The family's preprocessing on a tiling config built from c: the image stretched to one tile.
void gemma3_tiling(const VisionConfig& c, TilingConfig& t);

// --resample mtmd for this family: mtmd's padded resize with llama.cpp's clip bilinear.
void gemma3_mtmd_resampling(TilingConfig& t);

}  // namespace edgevlm
