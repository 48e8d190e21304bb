#include "vision/vit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>

#include "core/error.h"
#include "ops/cpu_features.h"
#include "vision/vit_attention.h"
#include "ops/matmul_internal.h"

namespace edgevlm {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(VitUnfold, PatchRowsAreChannelRowColumnOrder) {
  const int T = 12, P = 4, side = 3;
  std::vector<float> tile(3 * T * T);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < T; ++y)
      for (int x = 0; x < T; ++x) tile[(c * T + y) * T + x] = float(c * 10000 + y * 100 + x);
  std::vector<float> out(side * side * 3 * P * P);
  unfold_patches(tile.data(), T, T, P, out.data());
  for (int py = 0; py < side; ++py)
    for (int px = 0; px < side; ++px)
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < P; ++ky)
          for (int kx = 0; kx < P; ++kx) {
            const float got = out[((py * side + px) * 3 * P + c * P + ky) * P + kx];
            ASSERT_EQ(got, float(c * 10000 + (py * P + ky) * 100 + px * P + kx));
          }
}

TEST(VitAttention, MatchesScalarReference) {
  ThreadPool pool(2);
  const int tiles = 3, n_tok = 49, heads = 2, hd = 12, d = heads * hd;
  auto q = random_vec(size_t(tiles * n_tok * d), 1), k = random_vec(q.size(), 2), v = random_vec(q.size(), 3);
  std::vector<float> out(q.size()), ref(q.size());
  const float scale = 1.0f / std::sqrt(float(hd));
  vit_attention(q.data(), k.data(), v.data(), out.data(), tiles, n_tok, heads, hd, scale, pool);
  vit_attention_ref(q.data(), k.data(), v.data(), ref.data(), tiles, n_tok, heads, hd, scale);
  EXPECT_LT(max_abs_diff(out, ref), 2e-6f);
}

// The SIMD kernels' edges: token counts off their 6- or 8-row and 16-key blocks, head widths off
// their 16- and 8-feature tiles, odd ones (bf16 pairs dims), SigLIP's 729 tokens of 72, and large
// scores (softmax must subtract the row maximum).
struct AttnShape { int tiles, n_tok, heads, hd; float qscale; };
const AttnShape kAttnShapes[] = {{2, 50, 3, 12, 1.0f}, {1, 17, 2, 72, 1.0f}, {1, 7, 1, 20, 1.0f},
                                 {1, 7, 1, 21, 1.0f},  {2, 33, 2, 8, 1.0f},  {1, 40, 2, 16, 40.0f},
                                 {1, 1, 1, 4, 1.0f},   {1, 729, 1, 72, 1.0f}, {1, 9, 2, 3, 1.0f}};

TEST(VitAttention, Avx2KernelMatchesScalarReferenceOverShapes) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  ThreadPool pool(2);
  for (const AttnShape& sh : kAttnShapes) {
    SCOPED_TRACE(std::to_string(sh.n_tok) + " tokens, head " + std::to_string(sh.hd));
    const size_t n = size_t(sh.tiles) * sh.n_tok * sh.heads * sh.hd;
    auto q = random_vec(n, 21, sh.qscale), k = random_vec(n, 22), v = random_vec(n, 23);
    std::vector<float> out(n, 99.0f), ref(n);
    const float scale = 1.0f / std::sqrt(float(sh.hd));
    vit_attention_avx2(q.data(), k.data(), v.data(), out.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale, pool);
    vit_attention_ref(q.data(), k.data(), v.data(), ref.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale);
    EXPECT_LT(max_abs_diff(out, ref), 2e-6f);
  }
}

// The BF16 kernel against a scalar transcription of what it is meant to compute: q·scale, k, v and
// the unnormalized softmax weights exp(s − max) rounded to bf16 (formats/quant.h's f32_to_bf16),
// products and sums in f32 or better, each output divided by the f32 sum of the weights. Agreement within 5e-4 (a weight whose f32 value differs in the last bits may round to the
// neighbouring bf16, 2^-8 of it; a wrong pairing or panel is off by ~max|v|) pins the layouts, pairing
// and padding over kAttnShapes. Against exact f32 attention it stays within 1% of
// max|v| (bf16's 8-bit mantissa on four operands), and within 5% where the scores span tens (a
// peaked softmax, the 40× query: a score's rounding error grows with its size).
std::vector<float> bf16_attention_reference(const std::vector<float>& q, const std::vector<float>& k,
                                            const std::vector<float>& v, int tiles, int n_tok, int heads, int hd,
                                            float scale) {
  auto r = [](float x) { return bf16_to_f32(f32_to_bf16(x)); };
  const int d = heads * hd;
  std::vector<float> out(q.size());
  std::vector<float> p(static_cast<size_t>(n_tok));
  for (int t = 0; t < tiles; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < n_tok; ++i) {
        const float* qi = q.data() + (size_t(t) * n_tok + i) * d + h * hd;
        double mx = -1e300;
        for (int j = 0; j < n_tok; ++j) {
          const float* kj = k.data() + (size_t(t) * n_tok + j) * d + h * hd;
          double acc = 0;
          for (int e = 0; e < hd; ++e) acc += double(r(qi[e] * scale)) * double(r(kj[e]));
          p[size_t(j)] = float(acc);
          mx = std::max(mx, acc);
        }
        double sum = 0;
        for (int j = 0; j < n_tok; ++j) sum += (p[size_t(j)] = std::exp(float(p[size_t(j)] - mx)));
        float* o = out.data() + (size_t(t) * n_tok + i) * d + h * hd;
        for (int e = 0; e < hd; ++e) {
          double acc = 0;
          for (int j = 0; j < n_tok; ++j)
            acc += double(r(p[size_t(j)])) * double(r(v[(size_t(t) * n_tok + j) * d + h * hd + e]));
          o[e] = float(acc / sum);
        }
      }
  return out;
}

TEST(VitAttention, Bf16KernelMatchesBf16Reference) {
  if (!cpu_has_avx512_bf16()) GTEST_SKIP() << "no AVX512-BF16 (or EDGEVLM_NO_AVX512 set)";
  ThreadPool pool(2);
  for (const AttnShape& sh : kAttnShapes) {
    SCOPED_TRACE(std::to_string(sh.n_tok) + " tokens, head " + std::to_string(sh.hd));
    const size_t n = size_t(sh.tiles) * sh.n_tok * sh.heads * sh.hd;
    auto q = random_vec(n, 31, sh.qscale), k = random_vec(n, 32), v = random_vec(n, 33);
    std::vector<float> out(n, 99.0f), exact(n);
    const float scale = 1.0f / std::sqrt(float(sh.hd));
    vit_attention_bf16(q.data(), k.data(), v.data(), out.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale, pool);
    EXPECT_LT(max_abs_diff(out, bf16_attention_reference(q, k, v, sh.tiles, sh.n_tok, sh.heads, sh.hd, scale)), 5e-4f);
    vit_attention_ref(q.data(), k.data(), v.data(), exact.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale);
    EXPECT_LT(max_abs_diff(out, exact), sh.qscale > 1 ? 5e-2f : 1e-2f);
    // The AMX kernel (same arithmetic on tile products) where the CPU has it: the same bounds.
    std::vector<float> amx(n, 99.0f);
    if (detail::matmul_amx_active()) {
      vit_attention_amx(q.data(), k.data(), v.data(), amx.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale, pool);
      EXPECT_LT(max_abs_diff(amx, bf16_attention_reference(q, k, v, sh.tiles, sh.n_tok, sh.heads, sh.hd, scale)), 5e-4f);
      EXPECT_LT(max_abs_diff(amx, exact), sh.qscale > 1 ? 5e-2f : 1e-2f);
    }
    // vit_attention takes this kernel (the AMX one where the CPU has it) when asked for bf16, and
    // the f32 one otherwise.
    std::vector<float> via(n), f32(n);
    vit_attention(q.data(), k.data(), v.data(), via.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale, pool, true);
    vit_attention(q.data(), k.data(), v.data(), f32.data(), sh.tiles, sh.n_tok, sh.heads, sh.hd, scale, pool, false);
    EXPECT_EQ(via, detail::matmul_amx_active() ? amx : out);
    EXPECT_LT(max_abs_diff(f32, exact), 2e-6f);
  }
}

TEST(VitAttention, BidirectionalAndConfinedToItsTile) {
  ThreadPool pool(2);
  const int tiles = 2, n_tok = 16, heads = 2, hd = 8, d = heads * hd;
  auto q = random_vec(size_t(tiles * n_tok * d), 4), k = random_vec(q.size(), 5), v = random_vec(q.size(), 6);
  std::vector<float> base(q.size()), out(q.size());
  vit_attention(q.data(), k.data(), v.data(), base.data(), tiles, n_tok, heads, hd, 0.3f, pool);
  // Change the last token of tile 0: the first token of tile 0 must see it (no causal mask) ...
  auto v2 = v;
  for (int i = 0; i < d; ++i) v2[size_t((n_tok - 1) * d + i)] += 1.0f;
  vit_attention(q.data(), k.data(), v2.data(), out.data(), tiles, n_tok, heads, hd, 0.3f, pool);
  for (int i = 0; i < d; ++i) EXPECT_NE(out[size_t(i)], base[size_t(i)]) << i;
  // ... and tile 1 must not.
  for (size_t i = size_t(n_tok * d); i < out.size(); ++i) ASSERT_EQ(out[i], base[i]) << i;
}

// Direct transcription of docs/FORMAT.md §1 (convolution as loops, attention per head, biased
// variance LayerNorm), reading the generator's F32 values, not the loader's views.
std::vector<float> reference_vit(const RandomMmproj& r, const RandomMmprojSpec& s, const std::vector<float>& tiles,
                                 int n_tiles, bool mtmd_positions = false) {
  auto W = [&](const std::string& n) -> const std::vector<float>& {
    const NamedTensor* t = const_cast<RandomMmproj&>(r).find(n);
    EXPECT_NE(t, nullptr) << n;
    return t->values;
  };
  // InternVL's ViT (projector internvl): a class token after the patches (class_embd + position row
  // N), layer scales ls1/ls2 on the two residual branches, no post-LN; the class token is dropped.
  const bool cls = s.projector == ProjectorType::InternVL;
  const int T = s.image_size, P = s.patch_size, side = T / P, NP = side * side, N = NP + (cls ? 1 : 0),
            D = s.n_embd, F = s.n_ff, H = s.n_head, hd = D / H;
  auto ln = [&](std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b, float eps) {
    for (int t = 0; t < N; ++t) {
      double mean = 0, var = 0;
      for (int i = 0; i < D; ++i) mean += x[size_t(t * D + i)];
      mean /= D;
      for (int i = 0; i < D; ++i) var += (x[size_t(t * D + i)] - mean) * (x[size_t(t * D + i)] - mean);
      var /= D;
      for (int i = 0; i < D; ++i)
        x[size_t(t * D + i)] = float((x[size_t(t * D + i)] - mean) / std::sqrt(var + eps)) * w[size_t(i)] + b[size_t(i)];
    }
  };
  // y[t][o] = b[o] + Σ_i W[o][i] x[t][i] with W stored row o = n_in values.
  auto lin = [&](const std::vector<float>& x, int n_in, const std::vector<float>& w, const std::vector<float>& b,
                 int n_out) {
    std::vector<float> y(size_t(N * n_out));
    for (int t = 0; t < N; ++t)
      for (int o = 0; o < n_out; ++o) {
        double acc = b[size_t(o)];
        for (int i = 0; i < n_in; ++i) acc += double(w[size_t(o * n_in + i)]) * x[size_t(t * n_in + i)];
        y[size_t(t * n_out + o)] = float(acc);
      }
    return y;
  };
  std::vector<float> all;
  for (int tile = 0; tile < n_tiles; ++tile) {
    const float* px = tiles.data() + size_t(tile) * 3 * T * T;
    std::vector<float> h(size_t(N * D));
    const auto& cw = W("v.patch_embd.weight");
    for (int py = 0; py < side; ++py)
      for (int pxi = 0; pxi < side; ++pxi)
        for (int o = 0; o < D; ++o) {
          double acc = W("v.patch_embd.bias")[size_t(o)];
          for (int c = 0; c < 3; ++c)
            for (int ky = 0; ky < P; ++ky)
              for (int kx = 0; kx < P; ++kx)
                acc += double(cw[size_t(((o * 3 + c) * P + ky) * P + kx)]) *
                       px[(c * T + py * P + ky) * T + pxi * P + kx];
          const int p = py * side + pxi;
          h[size_t(p * D + o)] = float(acc) + W("v.position_embd.weight")[size_t(p * D + o)];
        }
    if (cls) {  // InternViT's rows: the class token row 0, patch p row p + 1 (llama.cpp's pairing: p and NP)
      const int cls_row = mtmd_positions ? NP : 0, shift = mtmd_positions ? 0 : 1;
      for (int p = NP - 1; p >= 0; --p)
        for (int o = 0; o < D; ++o)
          h[size_t(p * D + o)] += W("v.position_embd.weight")[size_t((p + shift) * D + o)] -
                                  W("v.position_embd.weight")[size_t(p * D + o)];
      for (int o = 0; o < D; ++o)
        h[size_t(NP * D + o)] = W("v.class_embd")[size_t(o)] + W("v.position_embd.weight")[size_t(cls_row * D + o)];
    }
    for (int l = 0; l < s.n_layer; ++l) {
      const std::string pre = "v.blk." + std::to_string(l) + ".";
      std::vector<float> x = h;
      ln(x, W(pre + "ln1.weight"), W(pre + "ln1.bias"), 1e-6f);
      auto q = lin(x, D, W(pre + "attn_q.weight"), W(pre + "attn_q.bias"), D);
      auto k = lin(x, D, W(pre + "attn_k.weight"), W(pre + "attn_k.bias"), D);
      auto v = lin(x, D, W(pre + "attn_v.weight"), W(pre + "attn_v.bias"), D);
      std::vector<float> a(size_t(N * D));
      for (int hh = 0; hh < H; ++hh)
        for (int i = 0; i < N; ++i) {
          std::vector<double> sc(static_cast<size_t>(N));
          double mx = -1e300;
          for (int j = 0; j < N; ++j) {
            double acc = 0;
            for (int e = 0; e < hd; ++e) acc += double(q[size_t(i * D + hh * hd + e)]) * k[size_t(j * D + hh * hd + e)];
            sc[size_t(j)] = acc / std::sqrt(double(hd));
            mx = std::max(mx, sc[size_t(j)]);
          }
          double sum = 0;
          for (double& e : sc) sum += (e = std::exp(e - mx));
          for (int e = 0; e < hd; ++e) {
            double acc = 0;
            for (int j = 0; j < N; ++j) acc += sc[size_t(j)] / sum * v[size_t(j * D + hh * hd + e)];
            a[size_t(i * D + hh * hd + e)] = float(acc);
          }
        }
      auto o = lin(a, D, W(pre + "attn_out.weight"), W(pre + "attn_out.bias"), D);
      for (size_t i = 0; i < h.size(); ++i) h[i] += (cls ? W(pre + "ls1.weight")[i % size_t(D)] : 1.0f) * o[i];
      x = h;
      ln(x, W(pre + "ln2.weight"), W(pre + "ln2.bias"), 1e-6f);
      auto u = lin(x, D, W(pre + "ffn_up.weight"), W(pre + "ffn_up.bias"), F);
      for (float& e : u) e = float(0.5 * e * (1 + std::tanh(std::sqrt(2 / M_PI) * (e + 0.044715 * double(e) * e * e))));
      auto dn = lin(u, F, W(pre + "ffn_down.weight"), W(pre + "ffn_down.bias"), D);
      for (size_t i = 0; i < h.size(); ++i) h[i] += (cls ? W(pre + "ls2.weight")[i % size_t(D)] : 1.0f) * dn[i];
    }
    if (!cls) ln(h, W("v.post_ln.weight"), W("v.post_ln.bias"), 1e-6f);
    all.insert(all.end(), h.begin(), h.begin() + size_t(NP) * D);
  }
  return all;
}

RandomMmprojSpec small_spec() {
  RandomMmprojSpec s;
  s.image_size = 40;
  s.patch_size = 8;  // 5×5 patches
  s.n_embd = 24;
  s.n_ff = 56;
  s.n_layer = 2;
  s.n_head = 3;
  s.projection_dim = 16;
  s.seed = 7;
  return s;
}

TEST(VitForward, MatchesDirectReferenceOfTheFormat) {
  RandomMmprojSpec uneven = small_spec();
  uneven.image_size = 30;
  uneven.patch_size = 7;  // 4×4 patches, 2 pixels left over per side (as so400m's 384 / 14)
  RandomMmprojSpec internvl = small_spec();
  internvl.projector = ProjectorType::InternVL;  // class token, layer scales, no post-LN
  for (const RandomMmprojSpec& s : {small_spec(), uneven, internvl}) {
    SCOPED_TRACE("tile " + std::to_string(s.image_size) + " patch " + std::to_string(s.patch_size) + " " +
                 projector_type_name(s.projector));
    RandomMmproj r = make_random_mmproj(s);
    auto bytes = r.writer().serialize();
    auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "vit");
    for (bool mtmd : {false, true}) {
      if (mtmd && s.projector != ProjectorType::InternVL) continue;
      SCOPED_TRACE(mtmd ? "--vit-compat mtmd" : "the authors' positions");
      auto m = MmprojModel::load(*f, {mtmd ? "mtmd" : ""});
      const int n_tiles = 3, side = s.image_size / s.patch_size;
      auto tiles = random_vec(size_t(n_tiles) * 3 * s.image_size * s.image_size, 11);
      ThreadPool pool(2);
      VitTimings tm;
      auto out = vit_forward(*m, tiles.data(), n_tiles, pool, 2, &tm);
      auto ref = reference_vit(r, s, tiles, n_tiles, mtmd);
      ASSERT_EQ(out.size(), size_t(n_tiles) * side * side * s.n_embd);
      EXPECT_LT(max_abs_diff(out, ref), 1e-4f);
      EXPECT_GE(tm.blocks_ms, 0.0);
    }
  }
}

TEST(VitForward, BatchSizeDoesNotChangeTheResult) {
  const RandomMmprojSpec s = small_spec();
  auto bytes = make_random_mmproj(s).writer().serialize();
  auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "vit");
  auto m = MmprojModel::load(*f);
  const int n_tiles = 5;
  auto tiles = random_vec(size_t(n_tiles) * 3 * s.image_size * s.image_size, 12);
  ThreadPool pool(2);
  auto all = vit_forward(*m, tiles.data(), n_tiles, pool, 0);
  for (int batch : {1, 2, 4}) {
    auto b = vit_forward(*m, tiles.data(), n_tiles, pool, batch);
    EXPECT_LT(max_abs_diff(all, b), 1e-6f) << "batch " << batch;
  }
  // Tile i of a batch equals tile i encoded alone.
  auto one = vit_forward(*m, tiles.data() + size_t(3) * 3 * s.image_size * s.image_size, 1, pool);
  std::vector<float> slice(all.begin() + 3 * 25 * 24, all.begin() + 4 * 25 * 24);
  EXPECT_LT(max_abs_diff(one, slice), 1e-6f);
  EXPECT_TRUE(vit_forward(*m, tiles.data(), 0, pool).empty());
}

// n_ff 64: every matrix Q8_0 in the file; 56: the down-projections are F32 in the file and
// quantized at load with padded rows (MmprojModel::blocks).
class VitQuantized : public ::testing::TestWithParam<int> {};
TEST_P(VitQuantized, WeightsStayCloseToF32) {
  RandomMmprojSpec s = small_spec();
  s.n_embd = 32;
  s.n_head = 4;
  s.n_ff = GetParam();
  s.projection_dim = 32;
  auto b32 = make_random_mmproj(s).writer().serialize();
  s.weight_type = GGMLType::Q8_0;
  auto b8 = make_random_mmproj(s).writer().serialize();
  auto f32 = GGUFFile::from_memory(b32.data(), b32.size(), "f32");
  auto f8 = GGUFFile::from_memory(b8.data(), b8.size(), "q8");
  auto m32 = MmprojModel::load(*f32);
  auto m8 = MmprojModel::load(*f8);
  auto tiles = random_vec(size_t(2) * 3 * s.image_size * s.image_size, 13);
  ThreadPool pool(2);
  auto a = vit_forward(*m32, tiles.data(), 2, pool);
  auto b = vit_forward(*m8, tiles.data(), 2, pool);
  // Post-LN outputs are O(1); Q8_0 weights and activations give errors of a few percent at most.
  const float d = max_abs_diff(a, b);
  EXPECT_LT(d, 0.15f);
  EXPECT_GT(d, 0.0f);  // the quantized path really ran
  EXPECT_EQ(m8->blocks[0].down.type, GGMLType::Q8_0);
}
INSTANTIATE_TEST_SUITE_P(VitForward, VitQuantized, ::testing::Values(64, 56));

// The pipeline moves work to another thread, never changes it: pipelined and serial runs agree
// bit for bit at every batch size (Q8_0 too, whose activations are quantized per call), and the
// timings say which mode ran.
TEST(VitForward, PipelineGivesTheSerialResultAtEveryBatchSize) {
  for (GGMLType wt : {GGMLType::F32, GGMLType::Q8_0}) {
    SCOPED_TRACE(type_name(wt));
    RandomMmprojSpec s = small_spec();
    s.n_embd = 32, s.n_head = 4, s.n_ff = 64;
    s.weight_type = wt;
    auto bytes = make_random_mmproj(s).writer().serialize();
    auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "vit");
    auto m = MmprojModel::load(*f);
    const int n_tiles = 9;  // a 2:4 grid + thumbnail
    auto tiles = random_vec(size_t(n_tiles) * 3 * s.image_size * s.image_size, 14);
    ThreadPool pool(2);
    const auto all = vit_forward(*m, tiles.data(), n_tiles, pool, VitOptions(0, false));
    for (int batch : {1, 2, 4, 6, 0}) {
      SCOPED_TRACE("batch " + std::to_string(batch));
      VitTimings ts, tp;
      auto serial = vit_forward(*m, tiles.data(), n_tiles, pool, VitOptions(batch, false), &ts);
      auto piped = vit_forward(*m, tiles.data(), n_tiles, pool, VitOptions(batch, true), &tp);
      EXPECT_EQ(serial, piped);
      EXPECT_LT(max_abs_diff(serial, all), 1e-5f);
      const int n_batches = batch == 0 ? 1 : (n_tiles + batch - 1) / batch;
      EXPECT_EQ(ts.n_batches, n_batches);
      EXPECT_EQ(tp.n_batches, n_batches);
      EXPECT_FALSE(ts.pipelined);
      EXPECT_EQ(tp.pipelined, n_batches > 1);  // one batch: nothing to overlap
      EXPECT_GT(tp.prepare_ms, 0.0);
      EXPECT_GT(tp.blocks_ms, 0.0);
      EXPECT_GE(tp.wall_ms, tp.blocks_ms);
    }
  }
}

// A tile source that fails (say, a bad thumbnail) surfaces as the error, in either mode, whichever
// batch it is in, and no producer thread is left running.
TEST(VitForward, SourceErrorIsRethrownInBothModes) {
  const RandomMmprojSpec s = small_spec();
  auto bytes = make_random_mmproj(s).writer().serialize();
  auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "vit");
  auto m = MmprojModel::load(*f);
  const int n_tiles = 7;
  auto tiles = random_vec(size_t(n_tiles) * 3 * s.image_size * s.image_size, 15);
  const size_t tf = size_t(3) * s.image_size * s.image_size;
  ThreadPool pool(2);
  for (int bad : {0, 3, 6})
    for (bool pipeline : {false, true}) {
      SCOPED_TRACE("bad tile " + std::to_string(bad) + (pipeline ? " pipelined" : " serial"));
      std::atomic<int> calls{0};
      TileSource src = [&](int i, float* scratch) -> const float* {
        ++calls;
        EV_CHECK(i != bad, "tile %d is broken", i);
        std::copy(tiles.begin() + long(i * tf), tiles.begin() + long((i + 1) * tf), scratch);
        return scratch;
      };
      try {
        vit_forward(*m, src, n_tiles, pool, VitOptions(2, pipeline));
        FAIL() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tile " + std::to_string(bad) + " is broken"), std::string::npos);
      }
      EXPECT_LE(calls.load(), n_tiles);
    }
  // The copying source gives what the in-memory tiles give.
  TileSource copy = [&](int i, float* scratch) -> const float* {
    std::copy(tiles.begin() + long(i * tf), tiles.begin() + long((i + 1) * tf), scratch);
    return scratch;
  };
  EXPECT_EQ(vit_forward(*m, copy, n_tiles, pool, VitOptions(2, true)), vit_forward(*m, tiles.data(), n_tiles, pool));
}

}  // namespace
}  // namespace edgevlm
