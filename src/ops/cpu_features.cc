#include "ops/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace edgevlm {

static bool detect_avx2() {
  const char* env = std::getenv("EDGEVLM_NO_SIMD");
  if (env && *env && std::strcmp(env, "0") != 0) return false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool cpu_has_avx2() {
  static const bool has = detect_avx2();
  return has;
}

}  // namespace edgevlm
