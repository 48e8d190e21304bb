#include "vision/family_internvl.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "engine/vlm.h"

namespace edgevlm {
namespace {

TEST(InternVLMtmdGrid, GlobalImageAloneWhenItFitsElseLlavaNextChoice) {
  const std::vector<Grid> c = default_grid_candidates(6);
  EXPECT_EQ(internvl_mtmd_grid(32, 32, c, 32), (Grid{0, 0}));
  EXPECT_EQ(internvl_mtmd_grid(20, 30, c, 32), (Grid{0, 0}));
  // Checked against mtmd (tests/vlm_family_parity): 100×40 → 3×2, 40×36 → 2×2, 30×90 → 1×3.
  EXPECT_EQ(internvl_mtmd_grid(100, 40, c, 32), (Grid{3, 2}));
  EXPECT_EQ(internvl_mtmd_grid(40, 36, c, 32), (Grid{2, 2}));
  EXPECT_EQ(internvl_mtmd_grid(30, 90, c, 32), (Grid{1, 3}));
}

MmprojModel* load_random(const std::string& name, RandomMmproj r, std::unique_ptr<GGUFFile>& f,
                         std::unique_ptr<MmprojModel>& m) {
  const std::string path = ::testing::TempDir() + "/" + name;
  r.writer().write(path);
  f = GGUFFile::open(path);
  m = MmprojModel::load(*f);
  return m.get();
}

TEST(InternVLConfigure, KeysMarkersClassTokenAndTiling) {
  RandomMmprojSpec s;
  s.projector = ProjectorType::InternVL;
  s.image_size = 32;
  s.patch_size = 4;
  RandomMmproj r = make_random_mmproj(s);
  std::erase_if(r.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  r.keys.emplace_back("clip.vision.preproc_min_tiles", GGUFValue::from_u32(1));
  r.keys.emplace_back("clip.vision.preproc_max_tiles", GGUFValue::from_u32(6));
  std::unique_ptr<GGUFFile> f;
  std::unique_ptr<MmprojModel> m;
  const VisionConfig& c = load_random("internvl_configure.gguf", r, f, m)->config();
  EXPECT_TRUE(c.class_token);
  EXPECT_EQ(m->class_embd.size(), size_t(c.n_embd));
  EXPECT_EQ(m->pos_embd.size(), size_t(c.n_patches() + 1) * c.n_embd);
  EXPECT_FALSE(m->blocks[0].ls1.empty());
  EXPECT_EQ(c.max_tiles, 6);
  EXPECT_EQ(c.image_start, "<img>");
  EXPECT_EQ(c.image_end, "</img>");
  EXPECT_TRUE(c.tile_separator.empty() && c.row_separator.empty());
  // InternVL's own rule: 100×40 (aspect 2.5) ties 2×1 and 3×1; the later wins (enough pixels),
  // stretched, thumbnail last.
  const TilingConfig t = tiling_config_for(c);
  EXPECT_EQ(t.strategy, TilingStrategy::InternVL);
  EXPECT_EQ(choose_grid(t, 100, 40), (Grid{3, 1}));
  EXPECT_EQ(t.effective_resize(), ResizeMode::Stretch);
  EXPECT_EQ(total_tiles(t, {3, 1}), 4);
  EXPECT_EQ(total_tiles(t, {1, 1}), 1);  // no thumbnail for a single tile
  // mtmd's: padded, the global image even after a 1×1 grid.
  TilingOverrides o;
  o.strategy = "internvl-mtmd";
  const TilingConfig tm = tiling_config_for(c, o);
  EXPECT_EQ(tm.effective_resize(), ResizeMode::Pad);
  EXPECT_EQ(total_tiles(tm, {1, 1}), 2);
  EXPECT_EQ(total_tiles(tm, {0, 0}), 1);
  // A ViT with q/k norms (InternViT-6B) is refused by name.
  RandomMmproj r6 = r;
  r6.tensors.push_back({"v.blk.0.attn_q_norm.weight", {int64_t(s.n_embd)}, std::vector<float>(size_t(s.n_embd), 1.0f), false});
  std::unique_ptr<GGUFFile> f6;
  std::unique_ptr<MmprojModel> m6;
  EXPECT_THROW(load_random("internvl_6b.gguf", r6, f6, m6), Error);
}

}  // namespace
}  // namespace edgevlm
