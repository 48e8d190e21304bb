#include "model/unicode.h"

#include <algorithm>
#include <array>

namespace edgevlm {

namespace {

uint8_t lookup(uint32_t cp) {
  const UnicodeRange* end = kUnicodeRanges + kUnicodeRangeCount;
  const UnicodeRange* it = std::upper_bound(kUnicodeRanges, end, cp,
                                            [](uint32_t v, const UnicodeRange& r) { return v < r.first; });
  return it == kUnicodeRanges ? 0 : (it - 1)->code;
}

}  // namespace

uint8_t unicode_flags(uint32_t cp) {
  static const std::array<uint8_t, 128> ascii = [] {
    std::array<uint8_t, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) t[c] = lookup(c);
    return t;
  }();
  if (cp < 128) return ascii[cp];
  if (cp > 0x10FFFF) return 0;
  return lookup(cp);
}

Utf8Status utf8_check(const char* s, size_t n, size_t* len, uint32_t* cp) {
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  const unsigned c0 = u[0];
  if (c0 < 0x80) {
    *len = 1;
    *cp = c0;
    return Utf8Status::Complete;
  }
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  uint32_t v;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    need = 2;
    v = c0 & 0x1F;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    need = 3;
    v = c0 & 0x0F;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    need = 4;
    v = c0 & 0x07;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    *len = 1;
    return Utf8Status::Invalid;
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= n) {
      *len = i;
      return Utf8Status::Incomplete;
    }
    const unsigned c = u[i];
    const unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (c < l || c > h) {
      *len = i;
      return Utf8Status::Invalid;
    }
    v = (v << 6) | (c & 0x3F);
  }
  *len = need;
  *cp = v;
  return Utf8Status::Complete;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace edgevlm
