#include "formats/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"

namespace edgevlm {
namespace {

TEST(QuantF16, KnownBitPatterns) {
  // Reference values from IEEE 754 binary16 tables.
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);               // rounds to +inf
  EXPECT_EQ(f32_to_f16(5.9604645e-08f), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_f16(2.9802322e-08f), 0x0000);         // half of it: ties to even → 0
  EXPECT_EQ(f32_to_f16(6.1035156e-05f), 0x0400);         // smallest normal
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);     // tie → even mantissa
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);     // tie → even (up)
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.33325195f);
  EXPECT_FLOAT_EQ(f16_to_f32(0x0001), 5.9604645e-08f);
  EXPECT_FLOAT_EQ(f16_to_f32(0x83ff), -6.0975552e-05f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0xfc00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(QuantF16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(QuantBF16, Conversions) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-3.0f), 0xc040);
  EXPECT_FLOAT_EQ(bf16_to_f32(0x3fc0), 1.5f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // tie → even
}

TEST(QuantQ8_0, HandComputedBlock) {
  // Block: d = f16(0.5) = 0x3800, q = 0, 1, -1, 2, -2, ... (j even → j/2, odd → -(j+1)/2)
  BlockQ8_0 b{};
  b.d = 0x3800;
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j % 2 == 0 ? j / 2 : -(j + 1) / 2);
  float out[32];
  dequantize_row(GGMLType::Q8_0, &b, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * b.qs[j]);

  // Quantizing a block whose max |x| is 127 gives scale 1.0 and exact integers.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j * 4 - 64);
  x[5] = 127;
  BlockQ8_0 q{};
  quantize_row(GGMLType::Q8_0, x, &q, 32);
  EXPECT_EQ(q.d, 0x3c00);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q.qs[j], int8_t(x[j]));
  // Half-way values round away from zero, as ggml's roundf does.
  float y[32] = {};
  y[0] = 127;
  y[1] = 2.5f;
  y[2] = -2.5f;
  quantize_row(GGMLType::Q8_0, y, &q, 32);
  EXPECT_EQ(q.qs[1], 3);
  EXPECT_EQ(q.qs[2], -3);
}

TEST(QuantQ4_0, HandComputedBlock) {
  // d = f16(2.0) = 0x4000; byte j = (lo = j) | (hi = 15 - j) << 4.
  BlockQ4_0 b{};
  b.d = 0x4000;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  float out[32];
  dequantize_row(GGMLType::Q4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (j - 8)) << j;
    EXPECT_EQ(out[j + 16], 2.0f * (15 - j - 8)) << j;
  }
  // The largest-magnitude value (here −16) becomes code 0 with d = max / −8 = 2.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float((j % 15) - 7) * 2.0f;
  x[3] = -16.0f;
  BlockQ4_0 q{};
  quantize_row(GGMLType::Q4_0, x, &q, 32);
  EXPECT_EQ(q.d, 0x4000);
  EXPECT_EQ(q.qs[3] & 0x0f, 0);
  float back[32];
  dequantize_row(GGMLType::Q4_0, &q, back, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(back[j], x[j]) << j;
}

TEST(QuantRows, ErrorBoundsOnRandomData) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(4096), y(4096);
  for (auto& v : x) v = nd(rng);
  for (GGMLType t : {GGMLType::F16, GGMLType::BF16, GGMLType::Q8_0, GGMLType::Q4_0}) {
    std::vector<uint8_t> buf(row_bytes(t, 4096));
    quantize_row(t, x.data(), buf.data(), 4096);
    dequantize_row(t, buf.data(), y.data(), 4096);
    double err = 0, ref = 0;
    for (int i = 0; i < 4096; ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    const double rel = std::sqrt(err / ref);
    // Relative RMS error expected of each format on Gaussian data.
    const double bound = t == GGMLType::F16 ? 1e-3 : t == GGMLType::BF16 ? 5e-3 : t == GGMLType::Q8_0 ? 1e-2 : 0.12;
    EXPECT_LT(rel, bound) << type_name(t);
  }
}

// Relative RMS round-trip error of the block types on Gaussian data: at most the bound (about
// 1.3× what ggml's reference quantizers give) and not far below it either (a quantizer that
// writes more bits than the type has, or a dequantizer that ignores them, would show up).
TEST(QuantRows, BlockTypesRoundTripError) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 1);
  const int n = 8192;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng) * 0.05f;
  struct Case { GGMLType t; double lo, hi; };
  for (const Case& c : {Case{GGMLType::Q4_1, 0.07, 0.12}, Case{GGMLType::Q5_0, 0.035, 0.06},
                        Case{GGMLType::Q5_1, 0.035, 0.06}, Case{GGMLType::IQ4_NL, 0.06, 0.11},
                        Case{GGMLType::Q2_K, 0.25, 0.42}, Case{GGMLType::Q3_K, 0.13, 0.23},
                        Case{GGMLType::Q4_K, 0.06, 0.11}, Case{GGMLType::Q5_K, 0.03, 0.055},
                        Case{GGMLType::Q6_K, 0.015, 0.027}, Case{GGMLType::IQ4_XS, 0.06, 0.11},
                        Case{GGMLType::Q8_K, 0.002, 0.008}}) {
    std::vector<uint8_t> buf(row_bytes(c.t, n));
    quantize_row(c.t, x.data(), buf.data(), n);
    dequantize_row(c.t, buf.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int i = 0; i < n; ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_GT(rel, c.lo) << type_name(c.t);
    EXPECT_LT(rel, c.hi) << type_name(c.t);
  }
}

// A deterministic input with outliers, an all-positive and an all-zero super-block.
std::vector<float> golden_input(int n) {
  std::vector<float> x(static_cast<size_t>(n));
  uint32_t s = 12345;
  for (int i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    float v = (float(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
    if (i % 61 == 0) v *= 12;
    if ((i / 256) % 5 == 3) v = std::fabs(v) + 0.01f;
    if ((i / 256) % 7 == 5) v = 0;
    x[size_t(i)] = v;
  }
  return x;
}

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// quantize_row writes what llama-quantize writes (no imatrix): the hashes are of the bytes that
// ggml's own ggml_quantize_chunk gives for golden_input(10240) (libggml-base.so of
// node-llama-cpp 3.21.1, called through dlopen).
TEST(QuantRows, MatchesGgmlReferenceQuantizers) {
  const int n = 256 * 40;
  const std::vector<float> x = golden_input(n);
  const std::pair<GGMLType, uint64_t> golden[] = {
      {GGMLType::Q4_0, 0x7ca1f987b5e350a6ull},   {GGMLType::Q4_1, 0x2e157bb623fc00cdull},
      {GGMLType::Q5_0, 0x95f5acfa1649c3fbull},   {GGMLType::Q5_1, 0x8a6b0d525cf953ecull},
      {GGMLType::Q8_0, 0xfa40216a9a0be70dull},   {GGMLType::Q2_K, 0x94fe4a2169f5619full},
      {GGMLType::Q3_K, 0xf43a306096c97405ull},   {GGMLType::Q4_K, 0x5f470d809f1af273ull},
      {GGMLType::Q5_K, 0xe293d96b2e381f4eull},   {GGMLType::Q6_K, 0xea0d173a12f92d0dull},
      {GGMLType::IQ4_NL, 0x40c89d21fe11649dull}, {GGMLType::IQ4_XS, 0x74ae608c290f5a0aull},
  };
  for (const auto& [t, hash] : golden) {
    std::vector<uint8_t> buf(row_bytes(t, n));
    quantize_row(t, x.data(), buf.data(), n);
    EXPECT_EQ(fnv1a(buf.data(), buf.size()), hash) << type_name(t);
  }
}

// Blocks written by hand from the layouts in quant.h, element values worked out on paper.
TEST(QuantRows, HandComputedKQuantBlocks) {
  std::vector<float> y(256);
  {  // Q4_K: d = 0.5, dmin = 0.25; sub-block 1 (scale 3, min 2), sub-block 5 (scale 17, min 33).
    BlockQ4_K b{};
    b.d = f32_to_f16(0.5f);
    b.dmin = f32_to_f16(0.25f);
    b.scales[1] = 3;                           // sc1 low 6 bits
    b.scales[5] = 2;                           // m1
    b.scales[9] = uint8_t(1 | (1 << 4));       // sc5 low nibble 1, m5 low nibble 1
    b.scales[1] |= uint8_t(1 << 6);            // sc5 bit 4 (in sc1's byte: harmless to sc1 & 63)
    b.scales[5] |= uint8_t(2 << 6);            // m5 bits 4-5: 33 = 1 | 2 << 4
    b.qs[0] = 0x70;                            // element 32 (sub-block 1, high nibble of byte 0): 7
    b.qs[64 + 3] = 0x0B;                       // element 128 + 3 (sub-block 4): 11, scale 0
    b.qs[64 + 4] = 0xE0;                       // element 160 + 4 (sub-block 5): 14
    dequantize_row(GGMLType::Q4_K, &b, y.data(), 256);
    EXPECT_FLOAT_EQ(y[32], 0.5f * 3 * 7 - 0.25f * 2);
    EXPECT_FLOAT_EQ(y[33], -0.25f * 2);
    EXPECT_FLOAT_EQ(y[131], 0.0f);
    EXPECT_FLOAT_EQ(y[164], 0.5f * 17 * 14 - 0.25f * 33);
  }
  {  // Q6_K: d = 0.125; element 200 = 128 + 64 + 8: sub-block 12, low nibble in ql[64 + 8] high
     // half, high bits at bits 4-5 of qh[32 + 8].
    BlockQ6_K b{};
    b.d = f32_to_f16(0.125f);
    b.scales[12] = -3;
    b.ql[64 + 8] = 0x50;
    b.qh[32 + 8] = uint8_t(2 << 4);
    dequantize_row(GGMLType::Q6_K, &b, y.data(), 256);
    EXPECT_FLOAT_EQ(y[200], 0.125f * -3 * ((5 | 2 << 4) - 32));
    EXPECT_FLOAT_EQ(y[8], 0.0f);  // scale 0
  }
  {  // Q3_K: d = 2; sub-block 9 scale s = 9 | 2 << 4 = 41 → 9; element 150 = 128 + 16 + 6:
     // 2-bit value at bits 0 of qs[32 + 22], high bit at bit 4 of hmask[22].
    BlockQ3_K b{};
    b.d = f32_to_f16(2.0f);
    b.scales[1] = uint8_t(9 << 4);             // sub-block 9's low nibble
    b.scales[8 + 1] = uint8_t(2 << 4);         // its high bits: byte 8 + 9 % 4, bits 2·(9 / 4)
    b.qs[32 + 22] = 3;
    b.hmask[22] = uint8_t(1 << 4);
    dequantize_row(GGMLType::Q3_K, &b, y.data(), 256);
    EXPECT_FLOAT_EQ(y[150], 2.0f * 9 * 3);
    EXPECT_FLOAT_EQ(y[151], 2.0f * 9 * -4);   // q = 0 without its high bit: −4
  }
  {  // IQ4_XS: d = 1; sub-block 3 scale 35 (low nibble 3 in scales_l[1] high, high bits 2).
    BlockIQ4_XS b{};
    b.d = f32_to_f16(1.0f);
    b.scales_l[1] = uint8_t(3 << 4);
    b.scales_h = uint16_t(2 << 6);
    b.qs[48 + 5] = uint8_t(0x0 | 0xF << 4);  // elements 96 + 5 → index 0, 96 + 21 → index 15
    dequantize_row(GGMLType::IQ4_XS, &b, y.data(), 256);
    EXPECT_FLOAT_EQ(y[101], 3.0f * -127);
    EXPECT_FLOAT_EQ(y[117], 3.0f * 113);
  }
  {  // Q5_1: d = 0.5, m = −1; element 20: nibble 9 (high nibble of byte 4), fifth bit 20 set.
    BlockQ5_1 b{};
    b.d = f32_to_f16(0.5f);
    b.m = f32_to_f16(-1.0f);
    b.qs[4] = 0x90;
    const uint32_t qh = 1u << 20;
    std::memcpy(b.qh, &qh, 4);
    dequantize_row(GGMLType::Q5_1, &b, y.data(), 32);
    EXPECT_FLOAT_EQ(y[20], 0.5f * 25 - 1);
    EXPECT_FLOAT_EQ(y[4], -1.0f);
  }
}

TEST(QuantRows, Geometry) {
  EXPECT_EQ(row_bytes(GGMLType::Q4_0, 64), 36u);
  EXPECT_EQ(row_bytes(GGMLType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(GGMLType::F16, 3), 6u);
  EXPECT_EQ(row_bytes(GGMLType::Q4_K, 256), 144u);
  EXPECT_EQ(row_bytes(GGMLType::Q5_0, 64), 2 * sizeof(BlockQ5_0));
  EXPECT_EQ(row_bytes(GGMLType::Q6_K, 512), 2 * sizeof(BlockQ6_K));
  EXPECT_EQ(row_bytes(GGMLType::IQ4_XS, 256), sizeof(BlockIQ4_XS));
  EXPECT_EQ(row_bytes(GGMLType::IQ4_NL, 32), sizeof(BlockIQ4_NL));
  EXPECT_EQ(row_bytes(GGMLType::Q8_K, 256), sizeof(BlockQ8_K));
  EXPECT_EQ(type_name(GGMLType::IQ2_XXS), "iq2_xxs");
  EXPECT_EQ(type_block_elems(GGMLType::IQ2_XXS), 0u);  // known by name only: the reader refuses it
  EXPECT_THROW(row_bytes(GGMLType::Q4_0, 33), Error);
  EXPECT_THROW(row_bytes(static_cast<GGMLType>(99), 32), Error);
  EXPECT_EQ(type_name(GGMLType::Q4_0), "q4_0");
}

TEST(QuantHostile, NonFiniteValuesAreRefusedOrMappedToZero) {
  std::vector<float> row(64, 0.5f);
  row[7] = std::nanf("");
  std::vector<uint8_t> out(row_bytes(GGMLType::Q8_0, 64));
  try {
    quantize_row(GGMLType::Q8_0, row.data(), out.data(), 64);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("element 7 of the row is NaN"), std::string::npos) << e.what();
  }
  row[7] = -INFINITY;
  EXPECT_THROW(quantize_row(GGMLType::Q4_0, row.data(), out.data(), 64), Error);
  // Float types keep the value.
  std::vector<uint16_t> h(64);
  EXPECT_NO_THROW(quantize_row(GGMLType::F16, row.data(), h.data(), 64));
  // The scalar int8 rounding every kernel's reference uses: defined for every float.
  EXPECT_EQ(round_to_int8(std::nanf("")), 0);
  EXPECT_EQ(round_to_int8(INFINITY), 127);
  EXPECT_EQ(round_to_int8(-1e30f), -127);
  EXPECT_EQ(round_to_int8(2.5f), 2);
  EXPECT_EQ(round_to_int8(-3.5f), -4);
}

}  // namespace
}  // namespace edgevlm
