#include "vision/family_lfm2.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/vlm.h"
#include "vision/projector.h"
#include "vision/vit.h"

namespace edgevlm {
namespace {

// LFM2-VL's real geometry: patch 16, scale factor 2 (32-px merged patches), 64..256 tokens.
SmartResize lfm2_smart() { return {32, 64 * 32 * 32, 256 * 32 * 32, 16}; }
SmartResize with_f32(SmartResize s) {
  s.float32 = true;
  return s;
}

TEST(Lfm2SmartSize, ProcessorRoundsHalvesToEvenMtmdAwayFromZero) {
  const SmartResize s = lfm2_smart();
  // 400 × 208: 12.5 and 6.5 merged patches. Python's round gives 12 and 6 (384 × 192, in range);
  // mtmd's std::round 13 and 7 (416 × 224).
  EXPECT_EQ(smart_resize_size(400, 208, s), (std::pair<int, int>{384, 192}));
  EXPECT_EQ(smart_resize_size(400, 208, with_f32(s)), (std::pair<int, int>{416, 224}));
  // Small images grow to at least 64 tokens (96 × 96 → 256 × 256, as mtmd gave 64 positions).
  EXPECT_EQ(smart_resize_size(96, 96, s), (std::pair<int, int>{256, 256}));
  EXPECT_EQ(smart_resize_size(96, 96, with_f32(s)), (std::pair<int, int>{256, 256}));
  // Large ones shrink to at most 256 tokens, keeping the aspect ratio (floor).
  const auto [w, h] = smart_resize_size(1300, 1100, s);
  EXPECT_LE(w * h, 256 * 32 * 32);
  EXPECT_EQ(w % 32, 0);
  EXPECT_EQ(h % 32, 0);
  EXPECT_EQ(std::pair(w, h), smart_resize_size(1300, 1100, with_f32(s)));
  EXPECT_THROW(smart_resize_size(0, 10, s), Error);
}

TEST(Lfm2Grid, ProcessorCutsByAreaMtmdBySide) {
  TilingConfig t;
  t.strategy = TilingStrategy::Lfm2;
  t.tile_size = kLfm2TileSize;
  t.min_tiles = kLfm2MinTiles;
  t.max_tiles = kLfm2MaxTiles;
  t.smart = lfm2_smart();
  // 700 × 760 rounds to 704 × 768 = 540672 pixels > 2 × 256 tokens' (524288): the processor cuts
  // it; mtmd only cuts an image with a side over 1024.
  EXPECT_NE(lfm2_grid(700, 760, t), (Grid{0, 0}));
  EXPECT_EQ(lfm2_mtmd_grid(700, 760, t), (Grid{0, 0}));
  EXPECT_EQ(lfm2_grid(500, 500, t), (Grid{0, 0}));
  // 1300 × 1100 (aspect 1.18): 2×2 and 3×3 tie at ratio 1; the larger wins (the image has more than
  // half of 3×3's pixels). mtmd chose 3×3 (tests/vlm_family_parity).
  EXPECT_EQ(lfm2_grid(1300, 1100, t), (Grid{3, 3}));
  EXPECT_EQ(lfm2_mtmd_grid(1300, 1100, t), (Grid{3, 3}));
  // A wide strip: the grid closest in aspect within 2..10 tiles.
  EXPECT_EQ(lfm2_mtmd_grid(3000, 300, t), (Grid{10, 1}));
  EXPECT_EQ(choose_grid(t, 3000, 300), (Grid{10, 1}));
}

TEST(InterpolatePositions, BilinearWithAntialiasAsPyTorch) {
  // Hand-derived from F.interpolate(bilinear, align_corners=False, antialias=True).
  // 2 → 4 (upsampling: plain bilinear, clamped at the edges).
  const float up[4] = {1, 2, 3, 4};  // 2 × 2 table, d = 1
  const std::vector<float> u = interpolate_positions(up, 2, 1, 4, 2);
  ASSERT_EQ(u.size(), 8u);
  const float row0[4] = {1, 1.25f, 1.75f, 2};
  for (int x = 0; x < 4; ++x) EXPECT_NEAR(u[size_t(x)], row0[x], 1e-6f);
  for (int x = 0; x < 4; ++x) EXPECT_NEAR(u[size_t(4 + x)], row0[x] + 2, 1e-6f);
  // 4 → 2 across (shrinking: the triangle widens to 2 source pixels each side).
  std::vector<float> t16(16);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) t16[size_t(y * 4 + x)] = float(x * x) + 10.0f * float(y);
  const std::vector<float> dn = interpolate_positions(t16.data(), 4, 1, 2, 4);
  const float x0 = (0.75f * 0 + 0.75f * 1 + 0.25f * 4) / 1.75f, x1 = (0.25f * 1 + 0.75f * 4 + 0.75f * 9) / 1.75f;
  for (int y = 0; y < 4; ++y) {
    EXPECT_NEAR(dn[size_t(y * 2)], x0 + 10.0f * float(y), 1e-5f);
    EXPECT_NEAR(dn[size_t(y * 2 + 1)], x1 + 10.0f * float(y), 1e-5f);
  }
  // The table's own size: unchanged.
  EXPECT_EQ(interpolate_positions(t16.data(), 4, 1, 4, 4), t16);
}

RandomMmproj lfm2_converter_file() {
  RandomMmprojSpec s;
  s.projector = ProjectorType::Lfm2;
  s.image_size = 64;  // a 4×4 position grid of 16-px patches
  s.patch_size = 16;
  s.n_embd = 16;
  s.n_ff = 32;
  s.n_head = 2;
  s.projection_dim = 24;
  RandomMmproj r = make_random_mmproj(s);
  std::erase_if(r.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  return r;
}

TEST(Lfm2Configure, MarkersTilingAndImagesOfTheirOwnSize) {
  const std::string path = ::testing::TempDir() + "/lfm2_configure.gguf";
  lfm2_converter_file().writer().write(path);
  auto f = GGUFFile::open(path);
  auto m = MmprojModel::load(*f);
  const VisionConfig& c = m->config();
  EXPECT_TRUE(c.interpolate_positions);
  EXPECT_EQ(c.image_start, "<|image_start|>");
  EXPECT_EQ(c.tile_marker_format, "<|img_row_%d_col_%d|>");
  EXPECT_FALSE(c.thumbnail_markers_alone);
  const TilingConfig t = tiling_config_for(c);
  EXPECT_EQ(t.strategy, TilingStrategy::Lfm2);
  EXPECT_EQ(t.tile_size, kLfm2TileSize);

  // The pipeline: a 1300 × 1100 image is cut into 3×3 tiles of 32×32 patches (256 tokens each)
  // and a thumbnail of its own smart size, last.
  ThreadPool pool(2);
  Image img(1300, 1100);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 37) % 251);
  const ImageEmbeddings e = encode_image(*m, img, t, pool);
  const auto [tw, th] = smart_resize_size(1300, 1100, t.smart);
  EXPECT_EQ(e.grid, (Grid{3, 3}));
  EXPECT_EQ(e.thumbnail_index, 9);
  EXPECT_EQ(e.tokens_per_tile, 256);
  EXPECT_EQ(e.thumbnail_tokens, (tw / 32) * (th / 32));
  EXPECT_EQ(e.positions(), 9 * 256 + e.thumbnail_tokens);
  EXPECT_EQ(e.data.size(), size_t(e.positions()) * 24);
  // The same from tiles preprocessed beforehand (TiledImage's offsets around the thumbnail).
  const TiledImage tiles = preprocess_image(img, t);
  EXPECT_EQ(tiles.thumb_w, tw);
  EXPECT_EQ(tiles.thumb_h, th);
  const ImageEmbeddings e2 = encode_tiles(*m, tiles, pool);
  EXPECT_EQ(e2.data, e.data);
  // The thumbnail's embeddings are those of the smart-resized image encoded on its own.
  TilingConfig alone = t;
  alone.max_tiles = alone.min_tiles;  // irrelevant: a small image is not cut
  const Image small = resize_image(img, tw, th, ResampleFilter::Bilinear);
  const ImageEmbeddings e3 = encode_image(*m, small, alone, pool);
  ASSERT_EQ(e3.n_tiles, 1);
  EXPECT_EQ(e3.thumbnail_tokens, e.thumbnail_tokens);
  for (size_t i = 0; i < e3.data.size(); ++i) ASSERT_NEAR(e3.data[i], e.tile(9)[i], 1e-4f) << i;

  // Another family's model keeps its own tile only: a grid it cannot take is refused by name.
  RandomMmprojSpec sv;
  sv.projector = ProjectorType::Idefics3;
  const std::string p2 = ::testing::TempDir() + "/lfm2_refuse.gguf";
  write_random_mmproj(p2, sv);
  auto f2 = GGUFFile::open(p2);
  auto m2 = MmprojModel::load(*f2);
  VitOptions o;
  o.patches = {3, 5};
  std::vector<float> px(size_t(3) * 3 * 5 * sv.patch_size * sv.patch_size);
  EXPECT_THROW(vit_forward(*m2, px.data(), 1, pool, o), Error);
  TilingOverrides ov;
  ov.strategy = "lfm2";
  EXPECT_THROW(tiling_config_for(m2->config(), ov), Error);
}

}  // namespace
}  // namespace edgevlm
