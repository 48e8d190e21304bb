// Pre-tokenizers of byte-level BPE vocabularies: split text into the words that BPE merges within.
// Each is a hand-written matcher of the regex its tokenizer.json names (the regexes use \p{L},
// \p{N} and \s, which std::regex lacks), following llama.cpp's custom splitters.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace edgevlm {

enum class PreTokenizerKind {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  // \p{N} (each digit alone), then Gpt2 on the pieces between.
  Starcoder,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  // As Llama3 with \p{N} instead of \p{N}{1,3}.
  Qwen2,
};

// Byte lengths of the words of `text`, in order; they sum to text.size(). Invalid UTF-8 bytes are
// kept, each as a codepoint of no class (so they group like punctuation).
std::vector<size_t> pretokenize(std::string_view text, PreTokenizerKind kind);

}  // namespace edgevlm
