#include "vision/family_idefics3.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/vlm.h"
#include "vision/projector.h"

namespace edgevlm {
namespace {

Image solid(int w, int h, uint8_t v) {
  Image img(w, h);
  std::fill(img.pixels.begin(), img.pixels.end(), v);
  return img;
}

Grid grid_of(int w, int h, int tile, int longest) { return idefics3_sizing(w, h, tile, longest).grid; }

TEST(Idefics3Grid, LongestEdgeScaledThenEachSideRoundedUpToTiles) {
  // SmolVLM-256M/500M: 512-px tiles, longest edge 2048.
  EXPECT_EQ(grid_of(1000, 600, 512, 2048), (Grid{4, 3}));  // 2048 × 1228.8 → 4 × 3
  EXPECT_EQ(grid_of(600, 1000, 512, 2048), (Grid{3, 4}));
  EXPECT_EQ(grid_of(300, 2000, 512, 2048), (Grid{1, 4}));  // 307.2 × 2048
  EXPECT_EQ(grid_of(2048, 1536, 512, 2048), (Grid{4, 3}));  // exact multiples stay
  // Small images are enlarged to the longest edge too (as the processor and mtmd do).
  EXPECT_EQ(grid_of(64, 64, 512, 2048), (Grid{4, 4}));
  EXPECT_EQ(grid_of(100, 10, 512, 2048), (Grid{4, 1}));
  // SmolVLM2-2.2B: 384-px tiles, longest edge 1536.
  EXPECT_EQ(grid_of(1920, 1080, 384, 1536), (Grid{4, 3}));  // 1536 × 864
  EXPECT_EQ(grid_of(800, 800, 384, 1536), (Grid{4, 4}));
  // The refined canvas is the grid in pixels.
  const Idefics3Sizing s = idefics3_sizing(1000, 600, 512, 2048);
  EXPECT_EQ(s.refined_w, 2048);
  EXPECT_EQ(s.refined_h, 1536);
}

// The authors' processor: longest edge resized (other side int, rounded up to even), then stretched
// to whole tiles (resize_for_vision_encoder); one tile means no grid.
TEST(Idefics3Grid, ProcessorRule) {
  auto hf = [](int w, int h, int tile, int longest) { return idefics3_hf_sizing(w, h, tile, longest); };
  Idefics3HfSizing s = hf(1000, 600, 512, 2048);
  EXPECT_EQ(s.w1, 2048);
  EXPECT_EQ(s.h1, 1228);  // int(2048 / (1000/600)) = 1228
  EXPECT_EQ(s.canvas.refined_w, 2048);
  EXPECT_EQ(s.canvas.refined_h, 1536);
  EXPECT_EQ(s.canvas.grid, (Grid{4, 3}));
  s = hf(300, 2000, 512, 2048);
  EXPECT_EQ(s.w1, 308);  // int(2048 · 0.15) = 307, rounded up to even
  EXPECT_EQ(s.canvas.grid, (Grid{1, 4}));
  EXPECT_EQ(hf(1920, 1080, 384, 1536).canvas.grid, (Grid{4, 3}));  // 1536 × 864 → 1536 × 1152
  EXPECT_EQ(hf(64, 64, 512, 2048).canvas.grid, (Grid{4, 4}));      // enlarged too
  // One tile after both resizes: the global image alone.
  s = hf(32, 8, 16, 16);
  EXPECT_EQ(s.canvas.grid, (Grid{0, 0}));
  EXPECT_EQ(s.canvas.refined_w, 16);
  EXPECT_EQ(s.canvas.refined_h, 16);
  EXPECT_EQ(hf(100, 60, 16, 0).canvas.grid, (Grid{0, 0}));
}

TEST(Idefics3Grid, NoLongestEdgeMeansTheGlobalImageOnly) {
  EXPECT_EQ(grid_of(1000, 600, 512, 0), (Grid{0, 0}));
  EXPECT_EQ(grid_of(1000, 600, 64, 64), (Grid{1, 1}));
  EXPECT_THROW(idefics3_sizing(0, 10, 512, 2048), Error);
}

TilingConfig idefics3_config(int tile, int longest, const char* strategy = "") {
  VisionConfig c;
  c.image_size = tile;
  c.patch_size = 8;
  c.projector = ProjectorType::Idefics3;
  c.tiling_policy = "idefics3";
  c.longest_edge = longest;
  c.max_tiles = 16;
  TilingOverrides o;
  o.strategy = strategy;
  return tiling_config_for(c, o);
}

TEST(Idefics3Tiles, GridTilesRowMajorThenTheStretchedGlobalImage) {
  const TilingConfig cfg = idefics3_config(16, 32);
  EXPECT_EQ(cfg.strategy, TilingStrategy::Idefics3);
  // 40 × 20 → 32 × 16: grid 2 × 1, no padding; tiles are the two halves, the global image last.
  Image img(40, 20);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 40; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = x < 20 ? 255 : 0;
      p[1] = uint8_t(5 * y);
      p[2] = 0;
    }
  const TiledImage t = preprocess_image(img, cfg);
  EXPECT_EQ(t.grid, (Grid{2, 1}));
  ASSERT_EQ(t.n_tiles, 3);
  EXPECT_EQ(t.thumbnail_index, 2);
  const size_t plane = 16 * 16;
  EXPECT_NEAR(t.tile(0)[8 * 16 + 4], 1.0f, 1e-6);   // red, left half
  EXPECT_NEAR(t.tile(1)[8 * 16 + 12], -1.0f, 1e-6);  // no red, right half
  // The global image is the whole image on one tile: left half red, right half not.
  EXPECT_GT(t.tile(2)[8 * 16 + 2], 0.9f);
  EXPECT_LT(t.tile(2)[8 * 16 + 13], -0.9f);
  (void)plane;
}

TEST(Idefics3Tiles, ProcessorStretchesAndTheOneTileCanvasIsTheGlobalImage) {
  const TilingConfig cfg = idefics3_config(16, 16);
  const TiledImage t = preprocess_image(solid(32, 8, 255), cfg);  // → 16 × 4 → stretched to 16 × 16
  EXPECT_EQ(t.grid.tiles(), 0);
  ASSERT_EQ(t.n_tiles, 1);
  for (int i = 0; i < 16 * 16; ++i) ASSERT_NEAR(t.tile(0)[i], 1.0f, 1e-6) << i;
}

// mtmd's way (--tiling idefics3-mtmd): the grid's canvas keeps the aspect ratio, padded black;
// the global image is the original stretched.
TEST(Idefics3Tiles, MtmdKeepsTheAspectRatioAndPadsBlackTheGlobalImageIsStretched) {
  const TilingConfig cfg = idefics3_config(16, 16, "idefics3-mtmd");
  const Image img = solid(32, 8, 255);  // white, 4:1
  const TiledImage t = preprocess_image(img, cfg);
  EXPECT_EQ(t.grid, (Grid{1, 1}));
  ASSERT_EQ(t.n_tiles, 2);  // one tile and the global image, even for a 1×1 grid
  // Tile: 16 × 4 of white centred on black (rows 6..9).
  EXPECT_NEAR(t.tile(0)[0], -1.0f, 1e-6);
  EXPECT_NEAR(t.tile(0)[7 * 16 + 8], 1.0f, 1e-6);
  EXPECT_NEAR(t.tile(0)[15 * 16 + 8], -1.0f, 1e-6);
  // Global image: stretched, white everywhere.
  for (int i = 0; i < 16 * 16; ++i) ASSERT_NEAR(t.tile(1)[i], 1.0f, 1e-6) << i;
}

TEST(Idefics3Tiles, WithoutLongestEdgeOnlyTheGlobalImage) {
  const TilingConfig cfg = idefics3_config(16, 0);
  const TiledImage t = preprocess_image(solid(50, 30, 90), cfg);
  EXPECT_EQ(t.grid.tiles(), 0);
  EXPECT_EQ(t.n_tiles, 1);
  EXPECT_EQ(t.thumbnail_index, 0);
}

// mtmd's layout: <fake><row_r_col_c> before each tile, "\n" after each row but the last,
// "\n\n" <fake> <global-img> before the global image and <fake> after it.
TEST(Idefics3Markers, LayoutIsMtmds) {
  enum : int32_t { NL = 1, NLNL = 2, FAKE = 3, GLOBAL = 4, CELL = 100 };
  ImageMarkers mk;
  mk.row_sep = {NL};
  mk.thumb_start = {NLNL, FAKE, GLOBAL};
  mk.thumb_end = {FAKE};
  mk.tile_start_cols = 8;
  mk.tile_start.resize(64);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) mk.tile_start[size_t(r) * 8 + c] = {FAKE, CELL + 10 * (r + 1) + (c + 1)};
  ImageEmbeddings e;
  e.grid = {3, 2};
  e.n_tiles = 7;
  e.thumbnail_index = 6;
  std::vector<int32_t> got;
  for (const LayoutItem& it : image_layout(e, mk)) got.push_back(it.token >= 0 ? it.token : -1000 - it.tile);
  const std::vector<int32_t> want = {
      FAKE, CELL + 11, -1000, FAKE, CELL + 12, -1001, FAKE, CELL + 13, -1002, NL,
      FAKE, CELL + 21, -1003, FAKE, CELL + 22, -1004, FAKE, CELL + 23, -1005,
      NLNL, FAKE, GLOBAL, -1006, FAKE};
  EXPECT_EQ(got, want);

  // No grid: the global image alone, with its markers.
  e.grid = {0, 0};
  e.n_tiles = 1;
  e.thumbnail_index = 0;
  got.clear();
  for (const LayoutItem& it : image_layout(e, mk)) got.push_back(it.token >= 0 ? it.token : -1000 - it.tile);
  EXPECT_EQ(got, (std::vector<int32_t>{NLNL, FAKE, GLOBAL, -1000, FAKE}));
}

TEST(Idefics3Markers, ConfigureSetsTheFamilysMarkersAndKeys) {
  RandomMmprojSpec s;
  s.projector = ProjectorType::Idefics3;
  s.image_size = 32;
  s.patch_size = 8;
  RandomMmproj r = make_random_mmproj(s);
  std::erase_if(r.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  r.keys.emplace_back("clip.vision.preproc_image_size", GGUFValue::from_u32(128));
  const std::string path = ::testing::TempDir() + "/idefics3_configure.gguf";
  r.writer().write(path);
  auto f = GGUFFile::open(path);
  auto m = MmprojModel::load(*f);
  const VisionConfig& c = m->config();
  EXPECT_EQ(c.longest_edge, 128);
  EXPECT_EQ(c.tiling_policy, "idefics3");
  EXPECT_EQ(c.max_tiles, 16);
  EXPECT_EQ(c.row_separator, "\n");
  EXPECT_EQ(c.tile_marker_format, "<fake_token_around_image><row_%d_col_%d>");
  EXPECT_EQ(c.thumbnail_start, (std::vector<std::string>{"\n\n", "<fake_token_around_image>", "<global-img>"}));
  EXPECT_EQ(c.thumbnail_end, (std::vector<std::string>{"<fake_token_around_image>"}));
  EXPECT_TRUE(c.image_start.empty() && c.image_end.empty() && c.tile_separator.empty());
  // --tiling relaxed still applies: the grid then comes from Algorithm 1, markers stay the family's.
  TilingOverrides o;
  o.strategy = "relaxed";
  const TilingConfig t = tiling_config_for(c, o);
  EXPECT_EQ(t.strategy, TilingStrategy::Relaxed);
  EXPECT_EQ(t.max_tiles, 16);
  EXPECT_TRUE(t.thumbnail_with_single_tile);
}

// HF Idefics3Connector.pixel_shuffle, index by index: out[h'][w'][k] =
// x[h'·s + k / (d·s)][w'·s + (k mod d·s) / d][k mod d]: dy outer, dx inner.
TEST(Idefics3PixelShuffle, MergeEqualsHfPixelShuffleAtSmolVlmScales) {
  for (auto [side, s] : {std::pair{32, 4}, std::pair{27, 3}, std::pair{8, 2}}) {
    const int d = 3, ms = side / s;
    std::vector<float> x(size_t(side) * side * d);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
    std::vector<float> out(size_t(ms) * ms * s * s * d);
    merge_patches(x.data(), 1, side, d, s, out.data());
    for (int hp = 0; hp < ms; ++hp)
      for (int wp = 0; wp < ms; ++wp)
        for (int k = 0; k < d * s * s; ++k) {
          const int hh = hp * s + k / (d * s), ww = wp * s + (k % (d * s)) / d, e = k % d;
          ASSERT_EQ(out[(size_t(hp) * ms + wp) * d * s * s + k], x[(size_t(hh) * side + ww) * d + e])
              << "side " << side << " s " << s << " token " << hp << "," << wp << " k " << k;
        }
  }
}

}  // namespace
}  // namespace edgevlm
