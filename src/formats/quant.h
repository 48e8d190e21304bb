// Number formats: GGML tensor types and their standard GGUF block layouts, bit-exact.
//   Q8_0: blocks of 32 — f16 scale d, 32 × int8 q;          x = d·q
//   Q4_0: blocks of 32 — f16 scale d, 16 bytes of nibbles;   x = d·(q − 8),
//         byte j holds element j (low nibble) and element j+16 (high nibble).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace edgevlm {

enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

constexpr int kQK = 32;  // elements per Q8_0 / Q4_0 block

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// True for the types this engine can compute with (dequantize, matmul).
bool type_supported(GGMLType t);
// Name as GGML prints it ("f32", "q4_0", ...); "type(N)" for unknown values.
std::string type_name(GGMLType t);
// Elements per block and bytes per block; 0 for types the engine does not know at all.
size_t type_block_elems(GGMLType t);
size_t type_block_bytes(GGMLType t);
// Bytes of a row of n elements (n must be a multiple of the block size).
size_t row_bytes(GGMLType t, int64_t n);

// Half and bfloat16 conversions (round to nearest even, as numpy / ggml do).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

// x rounded to nearest (even) and clamped to ±127; NaN gives 0. Float-to-int conversion of a value
// out of range (NaN, ±Inf, overflow) is undefined behaviour in C++, so every scalar int8
// quantization of a value that may come from a file goes through here.
inline int8_t round_to_int8(float x) {
  if (!(x == x)) return 0;
  const float v = __builtin_nearbyintf(x);
  return int8_t(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
}

// Row conversions. n must be a multiple of type_block_elems(t).
void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n);
// quantize_row to a block type throws edgevlm::Error naming the element when a value is NaN or
// infinite (ggml would write garbage scales; here a weight file with such values is refused).
void quantize_row(GGMLType t, const float* src, void* dst, int64_t n);

}  // namespace edgevlm
