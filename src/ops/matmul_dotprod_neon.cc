// The int8 tile kernels with the Armv8.2 dot-product instruction (compiled with
// -march=armv8.2-a+dotprod, called only after cpu_has_neon_dotprod()). Kept to the kernels alone
// so that nothing else in the program is built with instructions older cores lack.
#include "ops/matmul_blocks_neon.h"
#include "ops/matmul_neon_tiles.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "matmul_dotprod_neon.cc must be compiled with -march=armv8.2-a+dotprod (see CMakeLists.txt)"
#endif

namespace edgevlm::neon {
namespace {

// SDOT: each int32 lane gets the sum of 4 adjacent int8 products, so two instructions cover a
// block of 32; the lanes are summed after the conversion to float.
struct DotSdot {
  static int32x4_t dot32(int8x16_t wl, int8x16_t wh, int8x16_t xl, int8x16_t xh) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), wl, xl), wh, xh);
  }
  static int32x4_t dot16(int8x16_t w, int8x16_t x) { return vdotq_s32(vdupq_n_s32(0), w, x); }
};

// Constant-initialized: no guard variable, no code of this file runs before the CPU check.
constexpr IntKernels kDotprod = make_int_kernels<DotSdot>();

}  // namespace

const IntKernels& int_kernels_dotprod() { return kDotprod; }

}  // namespace edgevlm::neon

namespace edgevlm::detail {
BlockDot block_dot_neon_dotprod(GGMLType t) { return neon::block_dots<neon::DotSdot>(t); }
BlockDotRows block_dot4_neon_dotprod(GGMLType t) { return neon::block_dots4<neon::DotSdot>(t); }
}  // namespace edgevlm::detail
