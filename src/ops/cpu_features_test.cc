// CPU feature detection. scripts/test_arm.sh runs the kernel tests under qemu-user with
// `-cpu max` (has SDOT and I8MM) and `-cpu cortex-a53` (has neither) and sets EDGEVLM_EXPECT_DOTPROD
// and EDGEVLM_EXPECT_I8MM, so a detection that silently failed (and left those tests skipped) is caught.
#include "ops/cpu_features.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace edgevlm {
namespace {

TEST(CpuFeatures, I8mmImpliesDotprod) {
  if (cpu_has_neon_i8mm()) EXPECT_TRUE(cpu_has_neon_dotprod());
#if !defined(__aarch64__)
  EXPECT_FALSE(cpu_has_neon_i8mm());
#endif
}

TEST(CpuFeatures, DotprodImpliesNeon) {
  if (cpu_has_neon_dotprod()) {
    EXPECT_TRUE(cpu_has_neon());
  }
#if !defined(__aarch64__)
  EXPECT_FALSE(cpu_has_neon());
  EXPECT_FALSE(cpu_has_neon_dotprod());
#endif
#if !defined(__x86_64__) && !defined(__i386__)
  EXPECT_FALSE(cpu_has_avx2());
#endif
}

TEST(CpuFeatures, MatchesWhatTheRunnerExpects) {
  const char* neon = std::getenv("EDGEVLM_EXPECT_NEON");
  const char* dot = std::getenv("EDGEVLM_EXPECT_DOTPROD");
  const char* i8mm = std::getenv("EDGEVLM_EXPECT_I8MM");
  if (!neon && !dot && !i8mm) GTEST_SKIP() << "EDGEVLM_EXPECT_NEON / _DOTPROD / _I8MM not set";
  if (i8mm) {
    EXPECT_EQ(cpu_has_neon_i8mm(), std::string(i8mm) == "1");
  }
  if (neon) {
    EXPECT_EQ(cpu_has_neon(), std::string(neon) == "1");
  }
  if (dot) {
    EXPECT_EQ(cpu_has_neon_dotprod(), std::string(dot) == "1");
  }
}

}  // namespace
}  // namespace edgevlm
