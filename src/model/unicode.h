// Unicode facts the tokenizers need: general-category class and White_Space of a codepoint
// (tables generated from Python's unicodedata by scripts/gen_unicode_tables.py), and strict
// UTF-8 decoding that tells complete, incomplete and invalid sequences apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace edgevlm {

// The first letter of the general category (\p{L}, \p{M}, \p{N}, ...).
enum class UnicodeClass : uint8_t {
  Unassigned = 0,  // Cn, and the pseudo-codepoint of an invalid UTF-8 byte
  Letter = 1,
  Mark = 2,
  Number = 3,
  Punctuation = 4,
  Symbol = 5,
  Separator = 6,
  Other = 7,  // Cc, Cf, Cs, Co
};

constexpr uint8_t kUnicodeClassMask = 0x0F;
constexpr uint8_t kUnicodeWhiteSpace = 0x10;  // the White_Space property (what regex \s matches)

struct UnicodeRange {
  uint32_t first;  // the range runs to the next entry's first - 1
  uint8_t code;    // UnicodeClass | kUnicodeWhiteSpace
};
extern const UnicodeRange kUnicodeRanges[];
extern const size_t kUnicodeRangeCount;
extern const char* const kUnicodeDataVersion;

// Class and White_Space bit of a codepoint; codepoints past U+10FFFF give Unassigned.
uint8_t unicode_flags(uint32_t cp);
inline UnicodeClass unicode_class(uint32_t cp) {
  return static_cast<UnicodeClass>(unicode_flags(cp) & kUnicodeClassMask);
}
inline bool unicode_is_letter(uint32_t cp) { return unicode_class(cp) == UnicodeClass::Letter; }
inline bool unicode_is_number(uint32_t cp) { return unicode_class(cp) == UnicodeClass::Number; }
inline bool unicode_is_whitespace(uint32_t cp) { return (unicode_flags(cp) & kUnicodeWhiteSpace) != 0; }

enum class Utf8Status { Complete, Incomplete, Invalid };

// Examines the UTF-8 sequence at s[0..n) (n >= 1) strictly (no overlongs, surrogates or values past
// U+10FFFF). Complete: *len is its length and *cp its value. Incomplete: the n bytes are a valid
// start of a longer sequence. Invalid: *len is the length of the maximal ill-formed subpart (>= 1),
// which a decoder replaces with one U+FFFD.
Utf8Status utf8_check(const char* s, size_t n, size_t* len, uint32_t* cp);

// Length of the UTF-8 sequence a lead byte announces (1 for continuation and invalid bytes), the
// way llama.cpp's tokenizers step through text.
inline size_t utf8_lead_len(unsigned char c) {
  static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lut[c >> 4];
}

void utf8_append(std::string& out, uint32_t cp);

}  // namespace edgevlm
