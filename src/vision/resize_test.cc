#include "vision/resize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"

namespace edgevlm {
namespace {

const std::string kFix = std::string(EDGEVLM_SOURCE_DIR) + "/tests/fixtures/images/";

// References: PIL (Pillow 9.4) Image.resize((w, h), Image.BICUBIC), written by
// scripts/make_resize_reference.py. Tolerance: 0 — the fixed-point arithmetic is reproduced exactly,
// so every channel of every pixel must match (the stated bound for callers is max |diff| ≤ 1; we test 0).
TEST(ResizeBicubic, BitExactWithPil) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kFix)) {
    // Names: resize_<source>_<w>x<h>.png
    const std::string fn = entry.path().filename().string();
    char source[8] = {0};
    int w = 0, h = 0;
    if (std::sscanf(fn.c_str(), "resize_%7[a-z0-9]_%dx%d.png", source, &w, &h) != 3) continue;
    SCOPED_TRACE(fn);
    const Image src = load_image(kFix + "resize_" + source + ".png");
    const Image want = load_image(entry.path().string());
    ASSERT_EQ(want.width, w);
    ASSERT_EQ(want.height, h);
    const Image got = resize_bicubic(src, w, h);
    int max_diff = 0, mismatched = 0;
    for (size_t i = 0; i < got.pixels.size(); ++i) {
      int d = std::abs(int(got.pixels[i]) - int(want.pixels[i]));
      max_diff = std::max(max_diff, d);
      mismatched += d != 0;
    }
    EXPECT_EQ(max_diff, 0) << mismatched << " of " << got.pixels.size() << " values differ";
    ++checked;
  }
  EXPECT_EQ(checked, 15);  // every reference the script writes
}

TEST(ResizeBicubic, SameSizeIsACopyAndConstantStaysConstant) {
  Image im(13, 7);
  std::mt19937 rng(3);
  for (auto& v : im.pixels) v = uint8_t(rng());
  EXPECT_EQ(resize_bicubic(im, 13, 7).pixels, im.pixels);

  // Weights are normalised, so a flat image stays flat at any scale (also across the clamp).
  for (uint8_t value : {uint8_t(0), uint8_t(1), uint8_t(128), uint8_t(254), uint8_t(255)}) {
    Image flat(29, 17);
    std::fill(flat.pixels.begin(), flat.pixels.end(), value);
    for (auto [w, h] : {std::pair{3, 2}, std::pair{100, 50}, std::pair{29, 1}, std::pair{1, 40}}) {
      Image r = resize_bicubic(flat, w, h);
      for (uint8_t v : r.pixels) ASSERT_EQ(v, value) << w << "x" << h;
    }
  }
}

TEST(ResizeBicubic, GreyChannelCountMatchesRgbPerChannel) {
  // Channels are independent: a 1-channel resize equals the R channel of the RGB resize.
  Image im(31, 19);
  std::mt19937 rng(9);
  for (auto& v : im.pixels) v = uint8_t(rng());
  std::vector<uint8_t> grey(31 * 19);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = im.pixels[i * 3];
  std::vector<uint8_t> out(11 * 40);
  resize_bicubic_u8(grey.data(), 31, 19, 1, out.data(), 11, 40);
  Image rgb = resize_bicubic(im, 11, 40);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], rgb.pixels[i * 3]);
}

TEST(ResizeBicubic, InvalidArgumentsThrow) {
  Image im(4, 4);
  EXPECT_THROW(resize_bicubic(im, 0, 4), Error);
  EXPECT_THROW(resize_bicubic(im, 4, -1), Error);
  EXPECT_THROW(resize_bicubic(Image(), 4, 4), Error);
}

}  // namespace
}  // namespace edgevlm
