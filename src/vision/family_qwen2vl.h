// Qwen2-VL and Qwen2.5-VL (clip.projector_type = qwen2vl_merger / qwen2.5vl_merger): the one place
// that holds these families' conventions, as their authors' processor defines them (transformers'
// Qwen2VLImageProcessor) and as llama.cpp's mtmd implements them for GGUF pairs.
//
// Native dynamic resolution: no tiles. The image is resized to its own size (transformers'
// smart_resize: the aspect ratio kept, each side a multiple of 28 = patch 14 × merge 2, the area
// between kQwen2VLMinTokens and kQwen2VLMaxTokens merged tokens) and encoded whole.
//   authors' processor: PIL bicubic stretch, Python rounding; min 4 tokens (56 × 56 px), max the
//     engine's 4096 (the processor's config allows 16384; mtmd caps at 4096 too).
//   `--resample mtmd`: mtmd's float32 smart resize with its limits (8 … 4096 tokens), its clip
//     bilinear and its aspect-preserving black padding.
// Normalisation: clip.vision.image_mean / image_std (OpenAI CLIP's).
//
// Vision model (VisionConfig::rope_2d): patch embedding = the two temporal slices of the Conv3d
// summed (v.patch_embd.weight + v.patch_embd.weight.1: a still image is two identical frames), no
// position table: every attention rotates q and k by the patch's (row, column) with 2-D RoPE
// (rope_table_sections, base 10000). Qwen2-VL: LayerNorm, MLP fc1 → QuickGELU → fc2. Qwen2.5-VL:
// RMSNorm, SwiGLU MLP (clip.use_silu), and window attention: layers l with
// (l + 1) % clip.vision.n_wa_pattern != 0 attend only within windows of 112 × 112 px (8 × 8
// patches), the others to the whole image. Then v.post_ln (the merger's ln_q).
// Projector: 2 × 2 merge (top-left, top-right, bottom-left, bottom-right) → mm.0 → GELU → mm.2.
//
// Prompt: <|vision_start|> image <|vision_end|>; chat template chatml. Decoder (qwen2vl):
// M-RoPE, the image's tokens at 2-D coordinates (ImageEmbeddings::mrope, model/llm.h).
#pragma once

#include "formats/gguf.h"
#include "vision/dynamic_resolution.h"
#include "vision/mmproj.h"

namespace edgevlm {

inline constexpr int kQwen2VLMerge = 2;
inline constexpr int kQwen2VLMinTokens = 4, kQwen2VLMaxTokens = 4096;      // the authors' processor (capped)
inline constexpr int kQwen2VLMtmdMinTokens = 8, kQwen2VLMtmdMaxTokens = 4096;  // llama.cpp mtmd
inline constexpr int kQwen25VLWindowPixels = 112;

// Reads the families' conventions into c (2-D RoPE, norms, MLP, window attention, markers,
// tiling "qwen2vl"). Called by MmprojModel::load for the two projector types.
void qwen2vl_configure(const GGUFFile& f, VisionConfig& c);

// The families' preprocessing on a tiling config built from c (strategy qwen2vl).
void qwen2vl_tiling(const VisionConfig& c, TilingConfig& t);

// --resample mtmd for these families: mtmd's limits, float32 smart resize, clip bilinear, padding.
void qwen2vl_mtmd_resampling(const VisionConfig& c, TilingConfig& t);

}  // namespace edgevlm
