#include "vision/projector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace edgevlm {
namespace {

// Feature f of token (x, y) encodes all three: 10000·y + 100·x + f (tokens start at 1 so that the
// zero padding cannot be mistaken for a token).
std::vector<float> coded_grid(int n_tiles, int side, int d) {
  std::vector<float> h(size_t(n_tiles) * side * side * d);
  for (int t = 0; t < n_tiles; ++t)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        for (int f = 0; f < d; ++f)
          h[((size_t(t) * side + y) * side + x) * d + f] = float(1000000 * t + 10000 * (y + 1) + 100 * (x + 1) + f);
  return h;
}
float code(int t, int x, int y, int f) { return float(1000000 * t + 10000 * (y + 1) + 100 * (x + 1) + f); }

TEST(ProjectorMerge, TwoByTwoOrderIsTopLeftTopRightBottomLeftBottomRight) {
  const int side = 4, d = 3;
  auto h = coded_grid(2, side, d);
  std::vector<float> out(size_t(2) * 4 * 4 * d);
  merge_patches(h.data(), 2, side, d, 2, out.data());
  for (int t = 0; t < 2; ++t)
    for (int my = 0; my < 2; ++my)
      for (int mx = 0; mx < 2; ++mx) {
        const float* m = out.data() + ((size_t(t) * 2 + my) * 2 + mx) * 4 * d;
        for (int f = 0; f < d; ++f) {
          EXPECT_EQ(m[0 * d + f], code(t, 2 * mx, 2 * my, f));
          EXPECT_EQ(m[1 * d + f], code(t, 2 * mx + 1, 2 * my, f));
          EXPECT_EQ(m[2 * d + f], code(t, 2 * mx, 2 * my + 1, f));
          EXPECT_EQ(m[3 * d + f], code(t, 2 * mx + 1, 2 * my + 1, f));
        }
      }
}

// Independent formulation of the same permutation: HF Idefics3's pixel_shuffle (view/permute/
// reshape), transcribed index by index, on the padded grid.
std::vector<float> hf_pixel_shuffle(const std::vector<float>& x, int side, int d, int s) {
  // x: [side][side][d] (height, width, embed) → [side][side/s][d·s] → permute → [side/s][side][d·s]
  // → reshape [side/s][side/s][d·s²] → permute → [side/s][side/s][d·s²] → tokens.
  const int w2 = side / s;
  std::vector<float> a(x.size()), b(x.size()), c(x.size());
  // a[w2i][h][e'] = x.view(h, w2, d·s)[h][w2i][e'] (first permute)
  for (int hh = 0; hh < side; ++hh)
    for (int wi = 0; wi < w2; ++wi)
      for (int e = 0; e < d * s; ++e) a[(size_t(wi) * side + hh) * d * s + e] = x[(size_t(hh) * w2 + wi) * d * s + e];
  // b = a.reshape(w2, h/s, d·s²) then permute(0, 2, 1) → b[h2][w2][e'']
  for (int wi = 0; wi < w2; ++wi)
    for (int h2 = 0; h2 < side / s; ++h2)
      for (int e = 0; e < d * s * s; ++e)
        b[(size_t(h2) * w2 + wi) * d * s * s + e] = a[(size_t(wi) * (side / s) + h2) * d * s * s + e];
  return b;
}

TEST(ProjectorMerge, EqualsIdefics3PixelShuffleOnEvenGrids) {
  for (int s : {2, 3}) {
    const int side = 6, d = 4;
    auto h = coded_grid(1, side, d);
    std::vector<float> out(h.size());
    merge_patches(h.data(), 1, side, d, s, out.data());
    EXPECT_EQ(out, hf_pixel_shuffle(h, side, d, s)) << "scale " << s;
  }
}

TEST(ProjectorMerge, OddSidesAreZeroPaddedRightAndBottom) {
  const int side = 3, d = 2;
  auto h = coded_grid(1, side, d);
  std::vector<float> out(size_t(4) * 4 * d);
  merge_patches(h.data(), 1, side, d, 2, out.data());
  // merged (1, 0): top-left (2, 0), top-right padding, bottom-left (2, 1), bottom-right padding
  const float* m = out.data() + 1 * 4 * d;
  EXPECT_EQ(m[0], code(0, 2, 0, 0));
  EXPECT_EQ(m[1 * d], 0.0f);
  EXPECT_EQ(m[2 * d + 1], code(0, 2, 1, 1));
  EXPECT_EQ(m[3 * d], 0.0f);
  // merged (1, 1): only its top-left is a real token
  m = out.data() + 3 * 4 * d;
  EXPECT_EQ(m[0], code(0, 2, 2, 0));
  for (int i = d; i < 4 * d; ++i) EXPECT_EQ(m[i], 0.0f);

  // SigLIP at 384/14: 27×27 → 14×14 = 196, with exactly 27·27 real tokens placed once each.
  const int big = 27, dd = 1;
  auto hb = coded_grid(1, big, dd);
  std::vector<float> ob(size_t(14) * 14 * 4 * dd, -1.0f);
  merge_patches(hb.data(), 1, big, dd, 2, ob.data());
  int zeros = 0;
  std::vector<float> seen;
  for (float v : ob) {
    ASSERT_NE(v, -1.0f);
    if (v == 0.0f) ++zeros;
    else seen.push_back(v);
  }
  EXPECT_EQ(zeros, 14 * 14 * 4 - 27 * 27);
  std::sort(seen.begin(), seen.end());
  std::vector<float> expect = hb;
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(seen, expect);
}

float gelu(float x) { return float(0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * double(x) * x * x)))); }

std::vector<float> ref_linear(const std::vector<float>& x, int rows, int n_in, const std::vector<float>& w,
                              const std::vector<float>* b, int n_out) {
  std::vector<float> y(size_t(rows) * n_out);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < n_out; ++o) {
      double acc = b ? (*b)[size_t(o)] : 0.0;
      for (int i = 0; i < n_in; ++i) acc += double(w[size_t(o) * n_in + i]) * x[size_t(r) * n_in + i];
      y[size_t(r) * n_out + o] = float(acc);
    }
  return y;
}

class ProjectorForward : public ::testing::TestWithParam<ProjectorType> {};

TEST_P(ProjectorForward, MatchesScalarReference) {
  RandomMmprojSpec s;
  s.image_size = 56;
  s.patch_size = 8;  // 7×7: exercises the padding inside the projector too
  s.n_embd = 16;
  s.n_head = 2;
  s.projection_dim = 24;
  s.proj_hidden = 40;
  s.projector = GetParam();
  RandomMmproj r = make_random_mmproj(s);
  auto bytes = r.writer().serialize();
  auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "proj");
  auto m = MmprojModel::load(*f);
  const int n_tiles = 2, side = 7, D = 16, MD = 64, rows = n_tiles * 16;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> vit(size_t(n_tiles) * side * side * D);
  for (float& v : vit) v = u(rng);

  ThreadPool pool(2);
  auto out = project_tiles(*m, vit.data(), n_tiles, pool);
  ASSERT_EQ(out.size(), size_t(rows) * 24);

  std::vector<float> merged(size_t(rows) * MD);
  merge_patches(vit.data(), n_tiles, side, D, 2, merged.data());
  std::vector<float> ref;
  if (GetParam() == ProjectorType::Idefics3) {
    ref = ref_linear(merged, rows, MD, r.find("mm.model.fc.weight")->values, nullptr, 24);
  } else {
    const auto& w = r.find("mm.input_norm.weight")->values;
    const auto& b = r.find("mm.input_norm.bias")->values;
    for (int t = 0; t < rows; ++t) {
      float* x = merged.data() + size_t(t) * MD;
      double mean = 0, var = 0;
      for (int i = 0; i < MD; ++i) mean += x[i];
      mean /= MD;
      for (int i = 0; i < MD; ++i) var += (x[i] - mean) * (x[i] - mean);
      var /= MD;
      for (int i = 0; i < MD; ++i) x[i] = float((x[i] - mean) / std::sqrt(var + 1e-5)) * w[size_t(i)] + b[size_t(i)];
    }
    auto hid = ref_linear(merged, rows, MD, r.find("mm.1.weight")->values, &r.find("mm.1.bias")->values, 40);
    for (float& v : hid) v = gelu(v);
    ref = ref_linear(hid, rows, 40, r.find("mm.2.weight")->values, &r.find("mm.2.bias")->values, 24);
  }
  float md = 0;
  for (size_t i = 0; i < out.size(); ++i) md = std::max(md, std::fabs(out[i] - ref[i]));
  EXPECT_LT(md, 2e-5f);
}

INSTANTIATE_TEST_SUITE_P(Types, ProjectorForward, ::testing::Values(ProjectorType::Lfm2, ProjectorType::Idefics3),
                         [](const auto& info) { return std::string(projector_type_name(info.param)); });

}  // namespace
}  // namespace edgevlm
