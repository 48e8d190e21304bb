#include "formats/quant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace edgevlm {

bool type_supported(GGMLType t) {
  switch (t) {
    case GGMLType::F32:
    case GGMLType::F16:
    case GGMLType::BF16:
    case GGMLType::Q8_0:
    case GGMLType::Q4_0:
      return true;
    default:
      return false;
  }
}

std::string type_name(GGMLType t) {
  switch (t) {
    case GGMLType::F32: return "f32";
    case GGMLType::F16: return "f16";
    case GGMLType::Q4_0: return "q4_0";
    case GGMLType::Q4_1: return "q4_1";
    case GGMLType::Q5_0: return "q5_0";
    case GGMLType::Q5_1: return "q5_1";
    case GGMLType::Q8_0: return "q8_0";
    case GGMLType::Q8_1: return "q8_1";
    case GGMLType::Q2_K: return "q2_k";
    case GGMLType::Q3_K: return "q3_k";
    case GGMLType::Q4_K: return "q4_k";
    case GGMLType::Q5_K: return "q5_k";
    case GGMLType::Q6_K: return "q6_k";
    case GGMLType::Q8_K: return "q8_k";
    case GGMLType::I8: return "i8";
    case GGMLType::I16: return "i16";
    case GGMLType::I32: return "i32";
    case GGMLType::I64: return "i64";
    case GGMLType::F64: return "f64";
    case GGMLType::BF16: return "bf16";
  }
  return "type(" + std::to_string(static_cast<uint32_t>(t)) + ")";
}

// Block geometry of every type GGML defines, so that files holding types we cannot compute with
// still parse (their sizes are validated) and fail only when such a tensor is used.
size_t type_block_elems(GGMLType t) {
  switch (t) {
    case GGMLType::F32: case GGMLType::F16: case GGMLType::BF16: case GGMLType::I8:
    case GGMLType::I16: case GGMLType::I32: case GGMLType::I64: case GGMLType::F64:
      return 1;
    case GGMLType::Q4_0: case GGMLType::Q4_1: case GGMLType::Q5_0: case GGMLType::Q5_1:
    case GGMLType::Q8_0: case GGMLType::Q8_1:
      return 32;
    case GGMLType::Q2_K: case GGMLType::Q3_K: case GGMLType::Q4_K: case GGMLType::Q5_K:
    case GGMLType::Q6_K: case GGMLType::Q8_K:
      return 256;
  }
  return 0;
}

size_t type_block_bytes(GGMLType t) {
  switch (t) {
    case GGMLType::F32: return 4;
    case GGMLType::F16: return 2;
    case GGMLType::BF16: return 2;
    case GGMLType::I8: return 1;
    case GGMLType::I16: return 2;
    case GGMLType::I32: return 4;
    case GGMLType::I64: return 8;
    case GGMLType::F64: return 8;
    case GGMLType::Q4_0: return 18;
    case GGMLType::Q4_1: return 20;
    case GGMLType::Q5_0: return 22;
    case GGMLType::Q5_1: return 24;
    case GGMLType::Q8_0: return 34;
    case GGMLType::Q8_1: return 36;
    case GGMLType::Q2_K: return 84;
    case GGMLType::Q3_K: return 110;
    case GGMLType::Q4_K: return 144;
    case GGMLType::Q5_K: return 176;
    case GGMLType::Q6_K: return 210;
    case GGMLType::Q8_K: return 292;
  }
  return 0;
}

size_t row_bytes(GGMLType t, int64_t n) {
  const size_t be = type_block_elems(t);
  EV_CHECK(be != 0, "unknown tensor type %s", type_name(t).c_str());
  EV_CHECK(n >= 0 && n % static_cast<int64_t>(be) == 0,
           "row of %lld elements is not a multiple of the %s block size %zu", static_cast<long long>(n),
           type_name(t).c_str(), be);
  return static_cast<size_t>(n) / be * type_block_bytes(t);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | uint32_t(127 - 15 - e) << 23 | mant << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp - 15 + 127) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to inf
  if (abs < 0x38800000u) {                                 // subnormal or zero in f16
    // Shift the implicit-one mantissa into place with round to nearest even.
    if (abs < 0x33000000u) return uint16_t(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 + (113 - e)
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 → 15
  const uint32_t rem = r & 0x1fff;
  r >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return uint16_t((x >> 16) | 64);  // quiet NaN
  return uint16_t((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case GGMLType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GGMLType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case GGMLType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case GGMLType::Q8_0: {
      EV_CHECK(n % kQK == 0, "q8_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = d * b[i].qs[j];
      }
      return;
    }
    case GGMLType::Q4_0: {
      EV_CHECK(n % kQK == 0, "q4_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[i * kQK + j] = d * (int(b[i].qs[j] & 0x0f) - 8);
          dst[i * kQK + j + kQK / 2] = d * (int(b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    default:
      fail("cannot dequantize tensor type %s", type_name(t).c_str());
  }
}

// Quantizers follow ggml's reference rounding so that files match other tools bit for bit.
void quantize_row(GGMLType t, const float* src, void* dst, int64_t n) {
  if (type_block_elems(t) > 1) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(src[i]))
        fail("cannot quantize to %s: element %lld of the row is %s", type_name(t).c_str(), static_cast<long long>(i),
             std::isnan(src[i]) ? "NaN" : "infinite");
  }
  switch (t) {
    case GGMLType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GGMLType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case GGMLType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case GGMLType::Q8_0: {
      EV_CHECK(n % kQK == 0, "q8_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));  // roundf: half away from zero, as ggml
      }
      return;
    }
    case GGMLType::Q4_0: {
      EV_CHECK(n % kQK == 0, "q4_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        // The signed value of largest magnitude maps to −8, so the scale keeps its sign.
        float amax = 0, max = 0;
        for (int j = 0; j < kQK; ++j) {
          if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
          }
        }
        const float d = max / -8.f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < kQK / 2; ++j) {
          const float x0 = x[j] * id, x1 = x[j + kQK / 2] * id;
          const int q0 = std::min(15, int(int8_t(x0 + 8.5f)));
          const int q1 = std::min(15, int(int8_t(x1 + 8.5f)));
          b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
      }
      return;
    }
    default:
      fail("cannot quantize to tensor type %s", type_name(t).c_str());
  }
}

}  // namespace edgevlm
