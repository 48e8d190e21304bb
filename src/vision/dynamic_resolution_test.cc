#include "vision/dynamic_resolution.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "vision/resize.h"

namespace edgevlm {
namespace {

const std::string kFix = std::string(EDGEVLM_SOURCE_DIR) + "/tests/fixtures/images/";

std::vector<Grid> grid_4x4() {  // "a 4×4 candidate set": every m, n in 1..4, ascending m·n then m
  std::vector<Grid> c;
  for (Grid g : default_grid_candidates(16))
    if (g.m <= 4 && g.n <= 4) c.push_back(g);
  return c;
}

TEST(DynamicResolution, CandidateOrderIsAscendingTilesThenWidth) {
  const std::vector<Grid> want = {{1, 1}, {1, 2}, {2, 1}, {1, 3}, {3, 1}, {1, 4}, {2, 2}, {4, 1}};
  EXPECT_EQ(default_grid_candidates(4), want);
  EXPECT_EQ(default_grid_candidates(16).size(), 50u);  // sum of divisor counts of 1..16
  EXPECT_EQ(default_grid_candidates(4, 3).front(), (Grid{1, 3}));
  EXPECT_EQ(grid_4x4().size(), 16u);
}

// The paper's cases (DESIGN.md), grid m×n = m wide, n high.
TEST(DynamicResolution, PaperCasesAllStrategies) {
  for (int max_tiles : {9, 16}) {
    SCOPED_TRACE(max_tiles);
    const auto c = default_grid_candidates(max_tiles);
    // 380×393: LLaVA-NeXT 1:2 (384×768), relaxed 1:1.
    EXPECT_EQ(select_grid_llava_next(380, 393, c, 384), (Grid{1, 2}));
    EXPECT_EQ(select_grid_relaxed(380, 393, c, 384, 0.1), (Grid{1, 1}));
    EXPECT_EQ(select_grid_internvl(380, 393, c, 384), (Grid{1, 1}));
    // 394×390: LLaVA-NeXT 2:2, relaxed 1:1.
    EXPECT_EQ(select_grid_llava_next(394, 390, c, 384), (Grid{2, 2}));
    EXPECT_EQ(select_grid_relaxed(394, 390, c, 384, 0.1), (Grid{1, 1}));
    EXPECT_EQ(select_grid_internvl(394, 390, c, 384), (Grid{1, 1}));
    // 500×102: InternVL-1.5 5:1 (1920×384), relaxed 2:1.
    EXPECT_EQ(select_grid_internvl(500, 102, c, 384), (Grid{5, 1}));
    EXPECT_EQ(select_grid_relaxed(500, 102, c, 384, 0.1), (Grid{2, 1}));
    EXPECT_EQ(select_grid_llava_next(500, 102, c, 384), (Grid{2, 1}));
  }
  // 768×1536 on a 4×4 candidate set: 2:4 (and 9 tiles with the thumbnail).
  const auto c44 = grid_4x4();
  EXPECT_EQ(select_grid_relaxed(768, 1536, c44, 384, 0.1), (Grid{2, 4}));
  EXPECT_EQ(select_grid_llava_next(768, 1536, c44, 384), (Grid{2, 4}));
  EXPECT_EQ(select_grid_internvl(768, 1536, c44, 384), (Grid{2, 4}));
  TilingConfig cfg;
  cfg.candidates = c44;
  EXPECT_EQ(total_tiles(cfg, choose_grid(cfg, 768, 1536)), 9);
}

TEST(DynamicResolution, AlphaZeroWithAscendingOrderIsLlavaNext) {
  // With α = 0 the relaxed update takes a grid only for strictly more Re, so it keeps the first grid
  // reaching the maximum; in ascending m·n order that is also the one wasting least (waste = area − Re),
  // which is LLaVA-NeXT's choice. A check of the relaxed code path against the plain best fit.
  const auto c = default_grid_candidates(16);
  std::mt19937 rng(5);
  for (int i = 0; i < 3000; ++i) {
    const int w = 1 + int(rng() % 5000), h = 1 + int(rng() % 5000);
    ASSERT_EQ(select_grid_relaxed(w, h, c, 384, 0.0), select_grid_llava_next(w, h, c, 384)) << w << "x" << h;
  }
}

// Parity with Python transcriptions of LLaVA-NeXT's select_best_resolution, InternVL-1.5's
// find_closest_aspect_ratio (with InternVL's own target_ratios construction, not ours) and
// Algorithm 1, over 808 sizes: tests/fixtures/images/grid_reference.txt, made by
// scripts/make_resize_reference.py.
TEST(DynamicResolution, MatchesPythonReferenceImplementations) {
  std::ifstream f(kFix + "grid_reference.txt");
  ASSERT_TRUE(f.good());
  std::string line;
  std::getline(f, line);
  ASSERT_EQ(line.rfind("# tile 384 max_tiles 16 alpha 0.1", 0), 0u);
  const auto c = default_grid_candidates(16);
  int rows = 0;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    int w, h, rm, rn, lm, ln, im, in;
    ASSERT_TRUE(bool(is >> w >> h >> rm >> rn >> lm >> ln >> im >> in)) << line;
    SCOPED_TRACE(line);
    if (rm > 0) EXPECT_EQ(select_grid_relaxed(w, h, c, 384, 0.1), (Grid{rm, rn}));
    else EXPECT_EQ(select_grid_relaxed(w, h, c, 384, 0.1), select_grid_llava_next(w, h, c, 384));  // documented fallback
    EXPECT_EQ(select_grid_llava_next(w, h, c, 384), (Grid{lm, ln}));
    EXPECT_EQ(select_grid_internvl(w, h, c, 384), (Grid{im, in}));
    ++rows;
  }
  EXPECT_EQ(rows, 808);
}

TEST(DynamicResolution, RelaxedIsOrderDependentAsDocumented) {
  // 100×1205: 1×3 keeps 109440 effective pixels, 1×4 all 120500 (+10.1%). Scanning up from 1×3 the
  // gain exceeds α so 1×4 is taken; scanning down from 1×4, 1×3 is within α with less waste.
  auto asc = default_grid_candidates(16);
  auto desc = asc;
  std::reverse(desc.begin(), desc.end());
  EXPECT_EQ(select_grid_relaxed(100, 1205, asc, 384, 0.1), (Grid{1, 4}));
  EXPECT_EQ(select_grid_relaxed(100, 1205, desc, 384, 0.1), (Grid{1, 3}));
}

TEST(DynamicResolution, InternVLTieBreakOnArea) {
  // Square images tie on aspect among 1×1, 2×2, 3×3, 4×4: a later (larger) grid wins only when the
  // image has more than half the pixels of that grid.
  const auto c = default_grid_candidates(16);
  EXPECT_EQ(select_grid_internvl(300, 300, c, 384), (Grid{1, 1}));
  EXPECT_EQ(select_grid_internvl(600, 600, c, 384), (Grid{2, 2}));    // 360000 > 0.5·4·384² = 294912
  EXPECT_EQ(select_grid_internvl(540, 540, c, 384), (Grid{1, 1}));    // 291600 < 294912
  EXPECT_EQ(select_grid_internvl(1000, 1000, c, 384), (Grid{3, 3}));  // < 0.5·16·384²
  EXPECT_EQ(select_grid_internvl(1100, 1100, c, 384), (Grid{4, 4}));
}

TEST(DynamicResolution, ExtremeSizes) {
  const auto c = default_grid_candidates(16);
  for (auto sel : {0, 1, 2}) {
    auto pick = [&](int w, int h) {
      return sel == 0 ? select_grid_relaxed(w, h, c, 384, 0.1)
                      : sel == 1 ? select_grid_llava_next(w, h, c, 384) : select_grid_internvl(w, h, c, 384);
    };
    EXPECT_EQ(pick(1, 1), (Grid{1, 1}));
    EXPECT_EQ(pick(20000, 50), (Grid{16, 1}));
    EXPECT_EQ(pick(50, 20000), (Grid{1, 16}));
  }
  // Every Re is 0 (1×100000 rounds to zero pixels wide on every grid): relaxed falls back.
  EXPECT_EQ(select_grid_relaxed(1, 100000, c, 384, 0.1), select_grid_llava_next(1, 100000, c, 384));
  EXPECT_THROW(select_grid_relaxed(0, 10, c, 384, 0.1), Error);
  EXPECT_THROW(select_grid_internvl(10, -1, c, 384), Error);
}

TEST(DynamicResolution, StrategyNamesAndConfigErrors) {
  EXPECT_EQ(parse_tiling_strategy("relaxed"), TilingStrategy::Relaxed);
  EXPECT_EQ(parse_tiling_strategy("llava-next"), TilingStrategy::LlavaNext);
  EXPECT_EQ(parse_tiling_strategy("internvl"), TilingStrategy::InternVL);
  EXPECT_EQ(parse_tiling_strategy("single"), TilingStrategy::Single);
  for (auto s : {TilingStrategy::Relaxed, TilingStrategy::LlavaNext, TilingStrategy::InternVL, TilingStrategy::Single})
    EXPECT_EQ(parse_tiling_strategy(tiling_strategy_name(s)), s);
  try {
    parse_tiling_strategy("best");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'best'"), std::string::npos);
  }
  TilingConfig cfg;
  cfg.tile_size = 0;
  EXPECT_THROW(choose_grid(cfg, 10, 10), Error);
  cfg = {};
  cfg.alpha = -0.5;
  EXPECT_THROW(choose_grid(cfg, 10, 10), Error);
  cfg = {};
  cfg.candidates = {{2, 0}};
  EXPECT_THROW(choose_grid(cfg, 10, 10), Error);
  cfg = {};
  cfg.max_tiles = 0;
  EXPECT_THROW(choose_grid(cfg, 10, 10), Error);
  cfg = {};
  cfg.std = {0.5f, 0.f, 0.5f};
  EXPECT_THROW(choose_grid(cfg, 10, 10), Error);
  cfg = {};
  cfg.strategy = TilingStrategy::Single;
  EXPECT_EQ(choose_grid(cfg, 5000, 300), (Grid{1, 1}));
}

// The canvas each strategy's resize produces equals the same steps done in PIL
// (pipeline_*.png from scripts/make_resize_reference.py): LLaVA-NeXT resize_and_pad_image and
// InternVL's stretch, on resize_src.png (37×29) with tile 16.
TEST(DynamicResolution, CanvasMatchesPilPipelines) {
  const Image src = load_image(kFix + "resize_src.png");
  Image pad = fit_to_canvas(src, 32, 16, ResizeMode::Pad, {127, 127, 127});
  EXPECT_EQ(pad.pixels, load_image(kFix + "pipeline_pad_2x1_t16.png").pixels);
  Image st = fit_to_canvas(src, 48, 32, ResizeMode::Stretch, {0, 0, 0});
  EXPECT_EQ(st.pixels, load_image(kFix + "pipeline_stretch_3x2_t16.png").pixels);
}

float norm(uint8_t v, float mean, float std) { return (float(v) / 255.0f - mean) / std; }

TEST(DynamicResolution, TilesArePlanarRowMajorWithThumbnail) {
  const Image src = load_image(kFix + "resize_src.png");  // 37×29
  for (auto place : {ThumbnailPlacement::Last, ThumbnailPlacement::First}) {
    TilingConfig cfg;
    cfg.tile_size = 16;
    cfg.strategy = TilingStrategy::InternVL;
    cfg.candidates = {{3, 2}};
    cfg.thumbnail = place;
    cfg.mean = {0.48f, 0.46f, 0.41f};
    cfg.std = {0.27f, 0.26f, 0.28f};
    TiledImage t = preprocess_image(src, cfg);
    ASSERT_EQ(t.grid, (Grid{3, 2}));
    ASSERT_EQ(t.n_tiles, 7);
    ASSERT_EQ(t.data.size(), 7u * 3 * 16 * 16);
    EXPECT_EQ(t.thumbnail_index, place == ThumbnailPlacement::Last ? 6 : 0);
    const Image canvas = load_image(kFix + "pipeline_stretch_3x2_t16.png");
    const Image thumb = resize_bicubic(src, 16, 16);
    for (int row = 0; row < 2; ++row)
      for (int col = 0; col < 3; ++col) {
        const float* tile = t.tile(t.grid_tile_index(col, row));
        EXPECT_EQ(t.grid_tile_index(col, row), (place == ThumbnailPlacement::First ? 1 : 0) + row * 3 + col);
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < 16; y += 5)
            for (int x = 0; x < 16; x += 3)
              ASSERT_FLOAT_EQ(tile[c * 256 + y * 16 + x],
                              norm(canvas.at(col * 16 + x, row * 16 + y)[c], cfg.mean[c], cfg.std[c]));
      }
    const float* th = t.tile(t.thumbnail_index);
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; i += 7)
        ASSERT_FLOAT_EQ(th[c * 256 + i], norm(thumb.pixels[size_t(i) * 3 + c], cfg.mean[c], cfg.std[c]));
  }
}

TEST(DynamicResolution, PadUsesMeanColourAndThumbnailRules) {
  // A 40×10 image on tile 16 with relaxed: padding is int(255·0.5) = 127, which normalises to ~0.
  Image wide(40, 10);
  std::fill(wide.pixels.begin(), wide.pixels.end(), 255);
  TilingConfig cfg;
  cfg.tile_size = 16;
  cfg.max_tiles = 4;
  TiledImage t = preprocess_image(wide, cfg);
  EXPECT_EQ(t.grid, (Grid{3, 1}));  // 48×16 holds the image at 40×10 (all of Re); 2×1 only 32×8
  EXPECT_EQ(t.n_tiles, 4);
  EXPECT_EQ(t.thumbnail_index, 3);
  const float* tile0 = t.tile(0);
  EXPECT_NEAR(tile0[0], (127 / 255.f - 0.5f) / 0.5f, 1e-6);  // row 0: padding (canvas rows 2..13 hold the image)
  EXPECT_FLOAT_EQ(tile0[8 * 16 + 8], 1.0f);                  // middle: white
  // The thumbnail keeps the aspect ratio: 16×4 of white centred in padding.
  const float* th = t.tile(3);
  EXPECT_NEAR(th[0], (127 / 255.f - 0.5f) / 0.5f, 1e-6);
  EXPECT_FLOAT_EQ(th[7 * 16 + 3], 1.0f);

  // 1×1 grids carry no thumbnail unless asked.
  Image sq(16, 16);
  cfg.max_tiles = 16;
  EXPECT_EQ(preprocess_image(sq, cfg).n_tiles, 1);
  cfg.thumbnail_with_single_tile = true;
  TiledImage two = preprocess_image(sq, cfg);
  EXPECT_EQ(two.n_tiles, 2);
  EXPECT_EQ(std::vector<float>(two.tile(0), two.tile(1)), std::vector<float>(two.tile(1), two.tile(2)));
  cfg.thumbnail = ThumbnailPlacement::None;
  EXPECT_EQ(preprocess_image(wide, cfg).n_tiles, 3);
}

TEST(DynamicResolution, ExtremeImagesPreprocess) {
  TilingConfig cfg;  // tile 384, up to 16 tiles, relaxed
  Image one(1, 1);
  one.pixels = {255, 0, 0};
  TiledImage t = preprocess_image(one, cfg);
  EXPECT_EQ(t.grid, (Grid{1, 1}));
  EXPECT_EQ(t.n_tiles, 1);
  EXPECT_FLOAT_EQ(t.tile(0)[0], 1.0f);                 // R plane: the pixel fills the tile
  EXPECT_FLOAT_EQ(t.tile(0)[384 * 384], -1.0f);        // G plane

  Image wide(20000, 50);
  for (int x = 0; x < 20000; ++x)
    for (int y = 0; y < 50; ++y) wide.at(x, y)[0] = uint8_t(x * 255 / 19999);
  t = preprocess_image(wide, cfg);
  EXPECT_EQ(t.grid, (Grid{16, 1}));
  EXPECT_EQ(t.n_tiles, 17);
  // The red ramp runs across the 16 tiles: centre row of the last tile is brighter than of the first.
  const float* first = t.tile(0);
  const float* last = t.tile(15);
  EXPECT_LT(first[192 * 384 + 10], -0.9f);
  EXPECT_GT(last[192 * 384 + 370], 0.9f);
}

// The statistics of docs/TILING.md. Prints the tables; EDGEVLM_TILING_SAMPLES overrides the count.
TEST(DynamicResolution, StatisticsTable) {
  int64_t samples = 20000;
  if (const char* s = std::getenv("EDGEVLM_TILING_SAMPLES")) samples = std::atoll(s);
  TilingConfig cfg;  // tile 384, max 16 tiles, α 0.1, thumbnail unless 1×1
  struct Run {
    const char* what;
    SizeDistribution d;
    int lo, hi;
  } runs[] = {{"sides uniform in [64, 4096]", SizeDistribution::UniformSides, 64, 4096},
              {"sides uniform in [200, 1600]", SizeDistribution::UniformSides, 200, 1600},
              {"aspect log-uniform in [1/8, 8], pixels log-uniform in [256², 4096²]",
               SizeDistribution::LogUniformAspect, 256, 4096}};
  for (const Run& r : runs) {
    TilingStatistics s = tiling_statistics(cfg, samples, 2024, r.d, r.lo, r.hi, 196);
    std::printf("\n### %lld image sizes, %s\n\n%s", (long long)samples, r.what, format_tiling_statistics(s).c_str());
    EXPECT_EQ(s.vs_llava[0] + s.vs_llava[1] + s.vs_llava[2], samples);
    EXPECT_EQ(s.vs_internvl[0] + s.vs_internvl[1] + s.vs_internvl[2], samples);
    EXPECT_DOUBLE_EQ(s.mean_tokens[3], 196.0);  // single: one tile, no thumbnail
    // The point of the relaxed rule: it spends fewer tokens than LLaVA-NeXT's best fit on average.
    EXPECT_LT(s.mean_tokens[0], s.mean_tokens[1]);
    // ... and never gives up more than the α margin: Re(llava) ≤ (1 + α)·Re(relaxed).
    EXPECT_GE(s.min_effective_ratio_vs_llava, 1.0 / (1.0 + cfg.alpha) - 1e-12);
  }
  // Order sensitivity of Algorithm 1 on the first distribution.
  auto asc = default_grid_candidates(16);
  auto desc = asc;
  std::reverse(desc.begin(), desc.end());
  std::vector<Grid> lex;  // LLaVA-style generation: for m in 1..: for n in 1..
  for (int m = 1; m <= 16; ++m)
    for (int n = 1; m * n <= 16; ++n) lex.push_back({m, n});
  std::printf("\n### Algorithm 1 candidate order (%lld sizes, sides uniform in [64, 4096])\n\n"
              "| order | relaxed mean tiles | fewer / same / more tiles than llava-next |\n|---|---|---|\n",
              (long long)samples);
  for (auto [name, cands] : {std::pair{"ascending m·n, then m (default)", asc},
                             std::pair{"descending (reverse of default)", desc},
                             std::pair{"lexicographic m, then n", lex}}) {
    TilingConfig c = cfg;
    c.candidates = cands;
    TilingStatistics s = tiling_statistics(c, samples, 2024, SizeDistribution::UniformSides, 64, 4096, 196);
    std::printf("| %s | %.3f | %.1f%% / %.1f%% / %.1f%% |\n", name, s.mean_tiles[0], 100.0 * s.vs_llava[0] / samples,
                100.0 * s.vs_llava[1] / samples, 100.0 * s.vs_llava[2] / samples);
  }
}

}  // namespace
}  // namespace edgevlm
