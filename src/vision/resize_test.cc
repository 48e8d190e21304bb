#include "vision/resize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <array>
#include <random>
#include <algorithm>

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

// Lanczos: PIL's Image.LANCZOS, bit-exact (scripts/make_lanczos_reference.py writes the references).
TEST(ResizeLanczos, BitExactWithPil) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kFix)) {
    const std::string fn = entry.path().filename().string();
    char source[8] = {0};
    int w = 0, h = 0;
    if (std::sscanf(fn.c_str(), "lanczos_%7[a-z0-9]_%dx%d.png", source, &w, &h) != 3) continue;
    SCOPED_TRACE(fn);
    const Image src = load_image(kFix + "resize_" + source + ".png");
    const Image want = load_image(entry.path().string());
    const Image got = resize_image(src, w, h, ResampleFilter::Lanczos);
    ASSERT_EQ(got.pixels.size(), want.pixels.size());
    int max_diff = 0;
    for (size_t i = 0; i < got.pixels.size(); ++i)
      max_diff = std::max(max_diff, std::abs(int(got.pixels[i]) - int(want.pixels[i])));
    EXPECT_EQ(max_diff, 0);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

// llama.cpp's clip filters (mtmd's, for parity with it): no antialiasing.
TEST(ResizeLlamaCpp, BicubicSamplesTheGridPointsAndBilinearAlignsCorners) {
  Image im(16, 8);
  std::mt19937 rng(5);
  for (auto& v : im.pixels) v = uint8_t(rng());
  // Bicubic at an exact 2× downscale: output (j, i) is source (2j, 2i) (fraction 0).
  const Image b = resize_image(im, 8, 4, ResampleFilter::LlamaCppBicubic);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(b.at(x, y)[c], im.at(2 * x, 2 * y)[c]) << x << "," << y;
  // Bilinear: the four corners are the source's corners; a 2-pixel row blends linearly.
  const Image l = resize_image(im, 5, 3, ResampleFilter::LlamaCppBilinear);
  for (auto [ox, oy, sx, sy] : {std::array{0, 0, 0, 0}, std::array{4, 0, 15, 0}, std::array{0, 2, 0, 7},
                                std::array{4, 2, 15, 7}})
    for (int c = 0; c < 3; ++c) EXPECT_EQ(l.at(ox, oy)[c], im.at(sx, sy)[c]);
  Image two(2, 1);
  two.pixels = {0, 100, 255, 200, 0, 255};
  const Image t = resize_image(two, 5, 1, ResampleFilter::LlamaCppBilinear);
  EXPECT_EQ(t.at(2, 0)[0], 100);  // halfway, truncated
  EXPECT_EQ(t.at(1, 0)[0], 50);
  EXPECT_EQ(t.at(2, 0)[1], 50);
  // Flat stays flat and a same-size resize is a copy, for every filter.
  for (ResampleFilter f : {ResampleFilter::Bicubic, ResampleFilter::Lanczos, ResampleFilter::LlamaCppBicubic,
                           ResampleFilter::LlamaCppBilinear}) {
    SCOPED_TRACE(resample_filter_name(f));
    EXPECT_EQ(resize_image(im, 16, 8, f).pixels, im.pixels);
    Image flat(23, 11);
    std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(77));
    for (uint8_t v : resize_image(flat, 9, 30, f).pixels) ASSERT_EQ(v, 77);
    EXPECT_EQ(parse_resample_filter(resample_filter_name(f)), f);
  }
  EXPECT_THROW(parse_resample_filter("nearest"), Error);
}

}  // namespace
}  // namespace edgevlm
