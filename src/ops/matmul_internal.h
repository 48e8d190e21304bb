// Shared between matmul.cc and matmul_avx2.cc; not part of the public API.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace edgevlm::detail {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using AlignedBuf = std::unique_ptr<T[], AlignedFree>;

template <typename T>
AlignedBuf<T> aligned_alloc_n(size_t n) {
  size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  return AlignedBuf<T>(static_cast<T*>(std::aligned_alloc(64, bytes)));
}

// Activations quantized to Q8_0 blocks: row r, block b holds qs[(r·nb + b)·32 ...], scale
// d[r·nb + b] and s[r·nb + b] = d · Σq (used to fold Q4_0's offset of 8 out of the inner loop).
struct QuantizedActs {
  int64_t n_rows = 0;
  int64_t nb = 0;
  AlignedBuf<int8_t> qs;
  AlignedBuf<float> d;
  AlignedBuf<float> s;
};

}  // namespace edgevlm::detail
