// The chart writer's output decodes back (with the project's own PNG reader) to an image of the
// expected size with every bar drawn where the layout says and proportional to its value.
//
// src/tools/ is outside edgevlm_lib (the CLI needs CLI11, which the cross build lacks), and the
// chart writer has no other dependency, so the test compiles it in directly.
#include "tools/chart_png.cc"  // NOLINT(bugprone-suspicious-include)

#include <gtest/gtest.h>

#include <cmath>

#include "vision/image.h"

namespace edgevlm {
namespace {

bool has_ink(const Image& img, const ChartRect& r) {
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x)
      for (int c = 0; c < 3; ++c)
        if (img.at(x, y)[c] != kChartBackground) return true;
  return false;
}

TEST(ChartPng, DecodesBackWithEveryBarDrawn) {
  std::vector<BarChart> panels(2);
  panels[0] = {"ViT s", {"384x768", "768x768", "768x1536"}, {"nano", "bluelm-v-3b"}, {{0.1, 0.2, 0.4}, {3, 6, 12}}};
  panels[1] = {"decode tokens/s", {"384x768", "768x768", "768x1536"}, {"nano", "bluelm-v-3b"},
               {{900, 880, 850}, {4.5, NAN, 4.1}}};
  const ChartImage ci = draw_bar_charts(panels, 640, 200);
  const std::vector<uint8_t> png = encode_png(ci);
  const Image img = load_image_from_memory(png.data(), png.size(), {}, "chart.png");
  ASSERT_EQ(img.width, 640);
  ASSERT_EQ(img.height, 400);
  EXPECT_EQ(img.pixels, ci.rgb);  // lossless round trip
  ASSERT_EQ(ci.bars.size(), 12u);
  for (size_t i = 0; i < ci.bars.size(); ++i) {
    SCOPED_TRACE("bar " + std::to_string(i));
    const ChartRect& r = ci.bars[i];
    if (i == 9) {  // the NaN (panel 1, group 1, series 1): no bar
      EXPECT_EQ(r.x1 - r.x0, 0);
      continue;
    }
    ASSERT_GT(r.x1, r.x0);
    ASSERT_GT(r.y1, r.y0);
    ASSERT_GE(r.x0, 0);
    ASSERT_LE(r.x1, img.width);
    EXPECT_TRUE(has_ink(img, r));
    // inside the panel it belongs to
    EXPECT_EQ(r.y0 / 200, int(i / 6));
    EXPECT_EQ((r.y1 - 1) / 200, int(i / 6));
  }
  // Heights follow the values within a panel (bars[g·2 + s]): 12 is the tallest, 6 half of it,
  // 0.1 a sliver.
  const auto height = [&](size_t i) { return ci.bars[i].y1 - ci.bars[i].y0; };
  EXPECT_GT(height(5), std::max({height(0), height(1), height(2), height(3), height(4)}));
  EXPECT_NEAR(double(height(3)) / height(5), 0.5, 0.02);
  EXPECT_LE(height(0), 2);
  // Bars of one group do not overlap; groups go left to right.
  EXPECT_LE(ci.bars[0].x1, ci.bars[1].x0);
  EXPECT_LE(ci.bars[1].x1, ci.bars[2].x0);
  // The title was drawn: ink in the top-left corner of the first panel.
  EXPECT_TRUE(has_ink(img, {0, 0, 80, 20}));
}

TEST(ChartPng, BadShapesAreErrors) {
  EXPECT_THROW(draw_bar_charts({{"t", {"a", "b"}, {"s"}, {{1}}}}, 640, 200), Error);
  EXPECT_THROW(draw_bar_charts({{"t", {"a"}, {"s", "u"}, {{1}}}}, 640, 200), Error);
  EXPECT_THROW(draw_bar_charts({{"t", {"a"}, {"s"}, {{1}}}}, 20, 200), Error);
  EXPECT_THROW(draw_bar_charts({}, 640, 200), Error);
  EXPECT_THROW(write_png("/nonexistent-dir/x.png", draw_bar_charts({{"t", {"a"}, {"s"}, {{1}}}}, 640, 200)), Error);
}

}  // namespace
}  // namespace edgevlm
