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

#include "vision/image.h"

namespace edgevlm {

// Throws edgevlm::Error if the source is empty or out_w/out_h is not positive.
Image resize_bicubic(const Image& src, int out_w, int out_h);

// Same on any interleaved 8-bit buffer with `channels` channels (1..4); dst holds
// out_w * out_h * channels bytes.
void resize_bicubic_u8(const uint8_t* src, int w, int h, int channels, uint8_t* dst, int out_w, int out_h);

}  // namespace edgevlm
