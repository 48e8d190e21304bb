#include "formats/quant.h"

#include <gtest/gtest.h>

#include <cmath>
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

TEST(QuantRows, Geometry) {
  EXPECT_EQ(row_bytes(GGMLType::Q4_0, 64), 36u);
  EXPECT_EQ(row_bytes(GGMLType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(GGMLType::F16, 3), 6u);
  EXPECT_EQ(row_bytes(GGMLType::Q4_K, 256), 144u);
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
