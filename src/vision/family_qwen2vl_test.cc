#include "vision/family_qwen2vl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "engine/vlm.h"
#include "model/random_model.h"
#include "vision/projector.h"
#include "vision/vit.h"

namespace edgevlm {
namespace {

std::unique_ptr<GGUFFile> random_qwen_mmproj(ProjectorType p, int layers = 4) {
  RandomMmprojSpec s;
  s.image_size = 56;
  s.patch_size = 14;
  s.n_embd = 32;
  s.n_head = 2;
  s.n_layer = layers;
  s.projector = p;
  RandomMmproj m = make_random_mmproj(s);
  std::erase_if(m.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  const std::string path = ::testing::TempDir() + "qwen_mmproj_" + std::to_string(getpid()) + ".gguf";
  m.writer().write(path);
  auto f = GGUFFile::open(path);
  std::remove(path.c_str());
  return f;
}

// The conventions read from a file as llama.cpp's converter writes it.
TEST(FamilyQwen2VL, ConfigFromTheConvertersKeys) {
  auto f2 = random_qwen_mmproj(ProjectorType::Qwen2VL);
  auto m2 = MmprojModel::load(*f2);
  const VisionConfig& c2 = m2->config();
  EXPECT_TRUE(c2.rope_2d && c2.mrope_positions && !c2.rms_norms);
  EXPECT_EQ(c2.vit_act, VitAct::GeluQuick);  // neither clip.use_gelu nor clip.use_silu
  EXPECT_EQ(c2.window_pattern, 0);
  EXPECT_EQ(c2.image_start, "<|vision_start|>");
  EXPECT_EQ(c2.image_end, "<|vision_end|>");
  EXPECT_TRUE(m2->pos_embd.empty());
  EXPECT_EQ(m2->patch_embd.type, GGMLType::F32);  // the two slices summed at load

  auto f25 = random_qwen_mmproj(ProjectorType::Qwen25VL);
  auto m25 = MmprojModel::load(*f25);
  const VisionConfig& c25 = m25->config();
  EXPECT_TRUE(c25.rms_norms);
  EXPECT_EQ(c25.vit_act, VitAct::SwiGLU);
  EXPECT_EQ(c25.window_pattern, 4);
  EXPECT_EQ(c25.window_patches, 8);  // 112 px of patch 14
  for (int l = 0; l < 4; ++l) EXPECT_EQ(c25.window_layer(l), l != 3) << l;
}

// Native resolution: one image of its own smart size (multiples of 28), by the processor's rounding
// or mtmd's; 300 × 200 → 308 × 196 (11 × 7 tokens) either way, 1000 × 750 → 1008 × 756.
TEST(FamilyQwen2VL, SmartResizedImageIsTheOnlyTile) {
  auto f = random_qwen_mmproj(ProjectorType::Qwen2VL, 2);
  auto m = MmprojModel::load(*f);
  TilingConfig t = tiling_config_for(m->config());
  EXPECT_EQ(t.strategy, TilingStrategy::Qwen2VL);
  EXPECT_EQ(t.smart.align, 28);
  EXPECT_EQ(smart_resize_size(300, 200, t.smart), (std::pair<int, int>{308, 196}));
  EXPECT_EQ(smart_resize_size(1000, 750, t.smart), (std::pair<int, int>{1008, 756}));
  // Tiny images grow to the minimum area (4 tokens by the processor, 8 by mtmd).
  EXPECT_EQ(smart_resize_size(20, 20, t.smart), (std::pair<int, int>{56, 56}));
  const TilingConfig mt = tiling_config_for(m->config(), {.resample = "mtmd"});
  EXPECT_TRUE(mt.smart.float32);
  const auto [w, h] = smart_resize_size(20, 20, mt.smart);
  EXPECT_GE(w * h, 8 * 28 * 28);

  ThreadPool pool(2);
  Image img(300, 200);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 29) % 253);
  const ImageEmbeddings e = encode_image(*m, img, t, pool);
  EXPECT_EQ(e.n_tiles, 1);
  EXPECT_EQ(e.positions(), 11 * 7);
  EXPECT_TRUE(e.mrope);
  EXPECT_EQ(e.token_grid(0), (PatchGrid{11, 7}));
}

// Window attention with windows at least as large as the image is full attention; with smaller
// windows the output changes (the windows are real), and the order of the stream is undone.
TEST(FamilyQwen2VL, WindowAttentionIsLocal) {
  auto f = random_qwen_mmproj(ProjectorType::Qwen25VL, 2);  // window pattern 2: layer 0 windowed
  auto m = MmprojModel::load(*f);
  ThreadPool pool(2);
  const PatchGrid g{24, 10};  // 3 × 2 windows of 8 × 8 patches, cut at the right and bottom
  std::vector<float> px(size_t(3) * g.w * 14 * g.h * 14);
  for (size_t i = 0; i < px.size(); ++i) px[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  VitOptions opt;
  opt.patches = g;
  const std::vector<float> windowed = vit_forward(*m, px.data(), 1, pool, opt);
  VisionConfig& c = const_cast<VisionConfig&>(m->config());  // the same weights, windows covering the image
  c.window_patches = 64;
  const std::vector<float> whole = vit_forward(*m, px.data(), 1, pool, opt);
  c.window_pattern = 0;
  const std::vector<float> full = vit_forward(*m, px.data(), 1, pool, opt);
  float d_whole = 0, d_win = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    d_whole = std::max(d_whole, std::fabs(whole[i] - full[i]));
    d_win = std::max(d_win, std::fabs(windowed[i] - full[i]));
  }
  EXPECT_LT(d_whole, 1e-4f);
  EXPECT_GT(d_win, 1e-3f);
}

TEST(FamilyQwen2VL, BrokenFilesNameWhatIsWrong) {
  RandomMmprojSpec s;
  s.image_size = 56;
  s.patch_size = 14;
  s.n_embd = 32;
  s.n_head = 2;
  s.projector = ProjectorType::Qwen25VL;
  auto error_of = [](RandomMmproj m) {
    const std::string path = ::testing::TempDir() + "qwen_bad_" + std::to_string(getpid()) + ".gguf";
    m.writer().write(path);
    auto f = GGUFFile::open(path);
    std::remove(path.c_str());
    try {
      MmprojModel::load(*f);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  RandomMmproj m = make_random_mmproj(s);
  std::erase_if(m.keys, [](const auto& kv) { return kv.first == "clip.vision.n_wa_pattern"; });
  EXPECT_NE(error_of(m).find("clip.vision.n_wa_pattern"), std::string::npos);
  m = make_random_mmproj(s);
  m.erase("v.blk.0.ffn_gate.weight");
  EXPECT_NE(error_of(m).find("ffn_gate"), std::string::npos);
  m = make_random_mmproj(s);
  m.erase("mm.2.weight");
  EXPECT_NE(error_of(m).find("mm.2.weight"), std::string::npos);
}

}  // namespace
}  // namespace edgevlm
