// The int8 q·k step of the NEON attention with the Armv8.2 dot-product instruction (compiled
// with -march=armv8.2-a+dotprod, called only after cpu_has_neon_dotprod()). Kept to that kernel
// alone so that nothing else in the program is built with instructions older cores lack.
#include "ops/attention_neon_qk.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "attention_dotprod_neon.cc must be compiled with -march=armv8.2-a+dotprod (see CMakeLists.txt)"
#endif

namespace edgevlm::attn {
namespace {

// SDOT: each int32 lane gets the sum of 4 adjacent int8 products.
struct DotSdot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t k, int8x16_t q) { return vdotq_s32(acc, k, q); }
};

// Constant-initialized: no guard variable, no code of this file runs before the CPU check.
constexpr QkInt8Kernels kDotprod = make_qk_int8_kernels<DotSdot>();

}  // namespace

const QkInt8Kernels& qk_int8_dotprod() { return kDotprod; }

}  // namespace edgevlm::attn
