#include "model/tokenizer_pretok.h"

#include "model/unicode.h"

namespace edgevlm {

namespace {

constexpr uint8_t kInRange = 0x80;  // set on every codepoint of the piece being split
constexpr uint32_t kOutOfRange = 0xFFFFFFFF;

struct Codepoints {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> flags;  // UnicodeClass | kUnicodeWhiteSpace | kInRange
  std::vector<size_t> offset;  // byte offset of each codepoint, plus the text size at the end
};

Codepoints decode(std::string_view text) {
  Codepoints c;
  c.cp.reserve(text.size());
  c.flags.reserve(text.size());
  c.offset.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 1;
    uint32_t cp = 0;
    c.offset.push_back(i);
    if (utf8_check(text.data() + i, text.size() - i, &len, &cp) == Utf8Status::Complete) {
      c.cp.push_back(cp);
      c.flags.push_back(unicode_flags(cp) | kInRange);
      i += len;
    } else {
      c.cp.push_back(0xFFFD);  // matches nothing specific: groups with [^\s\p{L}\p{N}]
      c.flags.push_back(kInRange);
      i += 1;
    }
  }
  c.offset.push_back(text.size());
  return c;
}

// A window [b, e) of the codepoints, with out-of-window reads giving "nothing" like a regex end.
struct Window {
  const Codepoints& c;
  size_t b, e;
  uint32_t cp(size_t p) const { return p >= b && p < e ? c.cp[p] : kOutOfRange; }
  uint8_t flags(size_t p) const { return p >= b && p < e ? c.flags[p] : 0; }
  static bool letter(uint8_t f) { return (f & kUnicodeClassMask) == uint8_t(UnicodeClass::Letter); }
  static bool number(uint8_t f) { return (f & kUnicodeClassMask) == uint8_t(UnicodeClass::Number); }
  static bool space(uint8_t f) { return (f & kUnicodeWhiteSpace) != 0; }
  // [^\s\p{L}\p{N}] and inside the window
  static bool other(uint8_t f) { return (f & kInRange) && !letter(f) && !number(f) && !space(f); }
};

// Emits word ends (codepoint indices) into `ends`.
void split_gpt2(const Window& w, std::vector<size_t>& ends) {
  size_t pos = w.b;
  auto emit = [&](size_t end) { ends.push_back(end); pos = end; };
  while (pos < w.e) {
    const uint32_t c = w.cp(pos);
    if (c == '\'' && pos + 1 < w.e) {
      const uint32_t n1 = w.cp(pos + 1);
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        emit(pos + 2);
        continue;
      }
      const uint32_t n2 = w.cp(pos + 2);
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
        emit(pos + 3);
        continue;
      }
    }
    // ' ?X+' for X in letters, numbers, others: the optional space binds to what follows.
    const size_t q = c == ' ' ? pos + 1 : pos;
    const uint8_t f = w.flags(q);
    bool (*same)(uint8_t) = nullptr;
    if (Window::letter(f)) same = Window::letter;
    else if (Window::number(f)) same = Window::number;
    else if (Window::other(f)) same = Window::other;
    if (same) {
      size_t p = q + 1;
      while (same(w.flags(p))) ++p;
      emit(p);
      continue;
    }
    size_t n_space = 0;
    while (Window::space(w.flags(pos + n_space))) ++n_space;
    if (n_space > 1 && pos + n_space < w.e) {  // \s+(?!\S): leave the last space to the next word
      emit(pos + n_space - 1);
    } else if (n_space > 0) {
      emit(pos + n_space);
    } else {
      emit(pos + 1);
    }
  }
}

// fold_long_s: Llama-3's (?i:...) case folding also maps U+017F (long s) to 's'; Qwen2's
// explicit [sS] classes do not.
void split_llama3(const Window& w, size_t max_digits, bool fold_long_s, std::vector<size_t>& ends) {
  size_t pos = w.b;
  auto emit = [&](size_t end) { ends.push_back(end); pos = end; };
  // Among all codepoints only the capitals and U+017F case-fold to one of the letters compared.
  auto lower = [&](uint32_t c) -> uint32_t {
    return c >= 'A' && c <= 'Z' ? c + 32 : (fold_long_s && c == 0x17F) ? 's' : c;
  };
  while (pos < w.e) {
    const uint32_t c = w.cp(pos);
    const uint8_t f = w.flags(pos);
    if (c == '\'' && pos + 1 < w.e) {
      const uint32_t n1 = lower(w.cp(pos + 1));
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        emit(pos + 2);
        continue;
      }
      const uint32_t n2 = lower(w.cp(pos + 2));
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
        emit(pos + 3);
        continue;
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !Window::number(f) &&
        (Window::letter(f) || Window::letter(w.flags(pos + 1)))) {
      size_t p = pos + 1;
      while (Window::letter(w.flags(p))) ++p;
      emit(p);
      continue;
    }
    // \p{N}{1,max_digits}
    if (Window::number(f)) {
      size_t p = pos + 1;
      while (p - pos < max_digits && Window::number(w.flags(p))) ++p;
      emit(p);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t q = c == ' ' ? pos + 1 : pos;
    if (Window::other(w.flags(q))) {
      size_t p = q + 1;
      while (Window::other(w.flags(p))) ++p;
      while (w.cp(p) == '\r' || w.cp(p) == '\n') ++p;
      emit(p);
      continue;
    }
    size_t n_space = 0, last_newline_end = 0;
    while (Window::space(w.flags(pos + n_space))) {
      const uint32_t s = w.cp(pos + n_space);
      ++n_space;
      if (s == '\r' || s == '\n') last_newline_end = pos + n_space;
    }
    if (last_newline_end > 0) {  // \s*[\r\n]+
      emit(last_newline_end);
    } else if (n_space > 1 && pos + n_space < w.e) {  // \s+(?!\S)
      emit(pos + n_space - 1);
    } else if (n_space > 0) {  // \s+
      emit(pos + n_space);
    } else {
      emit(pos + 1);
    }
  }
}

// \p{N}: every number codepoint is a word of its own, and so is each run between them.
void split_digits(const Window& w, std::vector<size_t>& ends) {
  size_t run = w.b;
  for (size_t p = w.b; p < w.e; ++p) {
    if (Window::number(w.flags(p))) {
      if (p > run) ends.push_back(p);
      ends.push_back(p + 1);
      run = p + 1;
    }
  }
  if (w.e > run) ends.push_back(w.e);
}

}  // namespace

std::vector<size_t> pretokenize(std::string_view text, PreTokenizerKind kind) {
  const Codepoints c = decode(text);
  const size_t n = c.cp.size();
  std::vector<size_t> ends;
  switch (kind) {
    case PreTokenizerKind::Gpt2:
      split_gpt2(Window{c, 0, n}, ends);
      break;
    case PreTokenizerKind::Starcoder: {
      std::vector<size_t> pieces;
      split_digits(Window{c, 0, n}, pieces);
      size_t b = 0;
      for (size_t e : pieces) {
        split_gpt2(Window{c, b, e}, ends);
        b = e;
      }
      break;
    }
    case PreTokenizerKind::Llama3:
      split_llama3(Window{c, 0, n}, 3, true, ends);
      break;
    case PreTokenizerKind::Qwen2:
      split_llama3(Window{c, 0, n}, 1, false, ends);
      break;
  }
  std::vector<size_t> lengths;
  lengths.reserve(ends.size());
  size_t prev = 0;
  for (size_t e : ends) {
    lengths.push_back(c.offset[e] - c.offset[prev]);
    prev = e;
  }
  return lengths;
}

}  // namespace edgevlm
