#include "vision/family_gemma3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/vlm.h"
#include "vision/projector.h"

namespace edgevlm {
namespace {

// A Gemma 3 mmproj as the converter writes it: its conventions at load, and the projector against a
// direct computation from the file's tensors (the pool, RMSNorm and the [text, vit] projection
// read in the converter's order).
TEST(Gemma3, ConventionsAndProjectorFromTheFilesTensors) {
  RandomMmprojSpec s;
  s.projector = ProjectorType::Gemma3;
  s.image_size = 32;
  s.patch_size = 4;  // 8 × 8 patches
  s.scale_factor = 4;  // → 2 × 2 tokens
  s.n_embd = 16;
  s.projection_dim = 24;
  RandomMmproj r = make_random_mmproj(s);
  std::erase_if(r.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  const std::string path = ::testing::TempDir() + "/gemma3_conventions.gguf";
  r.writer().write(path);
  auto f = GGUFFile::open(path);
  auto m = MmprojModel::load(*f);
  const VisionConfig& c = m->config();
  EXPECT_TRUE(c.bidirectional_image_attention);
  EXPECT_EQ(c.image_start, "<start_of_image>");
  EXPECT_EQ(c.image_end, "<end_of_image>");
  EXPECT_EQ(c.merged_dim(), 16);
  EXPECT_EQ(c.tokens_per_tile(), 4);
  EXPECT_EQ(c.projection_dim, 24);
  const TilingConfig t = tiling_config_for(c);
  EXPECT_EQ(t.strategy, TilingStrategy::Single);
  EXPECT_EQ(t.effective_resize(), ResizeMode::Stretch);
  EXPECT_EQ(total_tiles(t, choose_grid(t, 300, 100)), 1);
  TilingOverrides o;
  o.resample = "mtmd";
  EXPECT_EQ(tiling_config_for(c, o).effective_resize(), ResizeMode::Pad);

  // Broken files are refused naming the tensor: no projection, or one of the wrong width.
  for (const bool drop : {true, false}) {
    RandomMmproj b = r;
    if (drop) b.erase("mm.input_projection.weight");
    else b.find("mm.input_projection.weight")->ne = {24, 8};
    if (!drop) b.find("mm.input_projection.weight")->values.resize(24 * 8);
    const std::string bp = ::testing::TempDir() + "/gemma3_broken.gguf";
    b.writer().write(bp);
    auto bf = GGUFFile::open(bp);
    try {
      MmprojModel::load(*bf);
      ADD_FAILURE() << "a broken projection was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mm.input_projection.weight"), std::string::npos) << e.what();
    }
  }

  const int D = 16, OUT = 24, side = 8;
  std::vector<float> vit(size_t(side) * side * D);
  for (size_t i = 0; i < vit.size(); ++i) vit[i] = std::sin(0.37f * float(i)) + 0.01f * float(i % 7);
  ThreadPool pool(2);
  const std::vector<float> got = project_tiles(*m, vit.data(), 1, pool);
  ASSERT_EQ(got.size(), size_t(4) * OUT);
  const std::vector<float>& norm = r.find("mm.soft_emb_norm.weight")->values;
  const std::vector<float>& proj = r.find("mm.input_projection.weight")->values;  // ne [OUT, D]: (j, k) at k·OUT + j
  for (int my = 0; my < 2; ++my)
    for (int mx = 0; mx < 2; ++mx) {
      std::vector<double> x(D, 0.0);
      for (int dy = 0; dy < 4; ++dy)
        for (int dx = 0; dx < 4; ++dx)
          for (int k = 0; k < D; ++k) x[size_t(k)] += vit[size_t(((4 * my + dy) * side + 4 * mx + dx) * D + k)] / 16.0;
      double ss = 0;
      for (double v : x) ss += v * v;
      const double inv = 1.0 / std::sqrt(ss / D + 1e-6);
      for (int j = 0; j < OUT; ++j) {
        double y = 0;
        for (int k = 0; k < D; ++k) y += x[size_t(k)] * inv * norm[size_t(k)] * proj[size_t(k * OUT + j)];
        EXPECT_NEAR(got[size_t((my * 2 + mx) * OUT + j)], y, 1e-4) << "token " << my * 2 + mx << " out " << j;
      }
    }
}

}  // namespace
}  // namespace edgevlm
