// Bicubic resampling with antialiasing, bit-exact with PIL's Image.resize(size, Image.BICUBIC)
// on RGB images (Pillow's libImaging/Resample.c, checked against Pillow 9.4 by
// tests/fixtures/images/resize_* made by scripts/make_resize_reference.py).
//
// What "as PIL does" means, so that a reader can check it:
// - separable: a horizontal pass into an 8-bit intermediate image, then a vertical pass;
//   a pass is skipped when its size does not change;
// - Keys cubic with a = -0.5, support 2; when downscaling by s > 1 the kernel is stretched by s
//   (support 2s, argument divided by s), which is the antialiasing;
// - output pixel i samples around center (i + 0.5)·s; taps [int(center − support + 0.5),
//   int(center + support + 0.5)) clamped to the image; weights normalised to sum 1;
// - weights become fixed point with 22 fractional bits (rounded half away from zero), sums
//   start at 0.5 in that scale, and each pass clamps to [0, 255] after the shift.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "vision/image.h"

namespace edgevlm {

// Resampling filters:
// - Bicubic: PIL's Image.BICUBIC, bit-exact (above);
// - Lanczos: PIL's Image.LANCZOS, the same resampler with Lanczos a = 3 (support 3, stretched by
//   the downscale factor): what transformers' Idefics3 (SmolVLM) processor resizes with;
// - Bilinear: PIL's Image.BILINEAR, the same resampler with the triangle filter (support 1,
//   stretched when downscaling): LFM2-VL's processor (torchvision's antialiased bilinear, which
//   computes the same weights in float);
// - LlamaCppBicubic: llama.cpp's clip bicubic (RESIZE_ALGO_BICUBIC of tools/mtmd): no
//   antialiasing; output pixel (j, i) samples source (int(tx·j), int(ty·i)) + fraction, tx =
//   W/out_w in float; a cubic through 4 clamped columns (a0 = p0, a1 = −d0/3 + d2 − d3/6,
//   a2 = (d0 + d2)/2, a3 = −d0/6 − d2/2 + d3/6 with d = p(k) − p0) on 4 rows, then the same cubic
//   through the 4 results vertically; rounded and clamped to [0, 255]. What the mtmd builds that
//   predate its Lanczos use for SmolVLM, kept so that parity with them can be checked pixel for pixel;
// - LlamaCppBilinear: llama.cpp's clip bilinear (RESIZE_ALGO_BILINEAR): corners aligned (source
//   x·(W−1)/(out_w−1), float), linear in x then y, truncated to uint8.
enum class ResampleFilter { Bicubic, Lanczos, Bilinear, LlamaCppBicubic, LlamaCppBilinear };
// "bicubic", "lanczos", "bilinear", "llama-cpp-bicubic", "llama-cpp-bilinear"
const char* resample_filter_name(ResampleFilter f);
ResampleFilter parse_resample_filter(std::string_view name);
// The weights of one axis of the separable resamplers (Bicubic, Lanczos, Bilinear): for output
// index i, taps first[i] .. first[i] + count[i] − 1 of the input with normalised weights
// w[i·ksize ..]. PIL's precompute_coeffs in its float64 order; PyTorch's antialiased interpolate
// (F.interpolate(..., antialias=True)) computes the same taps and weights.
struct ResampleTaps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<double> w;
};
ResampleTaps resample_taps(int in_size, int out_size, ResampleFilter f);

// Throws edgevlm::Error if the source is empty or out_w/out_h is not positive. A same-size resize copies.
Image resize_image(const Image& src, int out_w, int out_h, ResampleFilter f);

// Throws edgevlm::Error if the source is empty or out_w/out_h is not positive.
Image resize_bicubic(const Image& src, int out_w, int out_h);

// Same on any interleaved 8-bit buffer with `channels` channels (1..4); dst holds
// out_w * out_h * channels bytes.
void resize_bicubic_u8(const uint8_t* src, int w, int h, int channels, uint8_t* dst, int out_w, int out_h);

}  // namespace edgevlm
