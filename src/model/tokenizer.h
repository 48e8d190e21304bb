// Tokenizers read from GGUF metadata (tokenizer.ggml.*), behaving like llama.cpp's:
// - byte-level BPE (tokenizer.ggml.model = "gpt2"): GPT-2 byte↔unicode mapping, merges by rank,
//   pre-tokenizer chosen by tokenizer.ggml.pre (gpt-2/default, starcoder, llama3, qwen2 families);
// - SentencePiece-style BPE (tokenizer.ggml.model = "llama"): merges chosen by token score, "▁" for
//   spaces, a leading space added to the text, <0xXX> byte fallback.
// Special tokens (control, user-defined, unknown types) are matched as whole strings before
// tokenizing; control and unknown ones only when parse_special is set.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer_pretok.h"

namespace edgevlm {

class GGUFFile;

enum class TokenizerKind { BPE, SPM };

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

class Tokenizer {
 public:
  // Throws edgevlm::Error naming the key when the tokenizer metadata is missing or inconsistent
  // (no tokens, merges naming tokens not in the vocabulary, special ids out of range, ...).
  static std::unique_ptr<Tokenizer> from_gguf(const GGUFFile& f);

  // add_bos: prepend bos_id() (when the vocabulary has one). parse_special: text equal to a
  // control token (e.g. "<|im_start|>") becomes that token; user-defined tokens always do.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // The bytes this token stands for (control tokens: their text). Throws on an id out of range.
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces; skip_special drops control and unknown-type tokens. For SentencePiece
  // vocabularies the space added before the first word is removed again.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  int n_vocab() const { return static_cast<int>(tokens_.size()); }
  int32_t bos_id() const { return bos_; }  // -1 when absent
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  int32_t unk_id() const { return unk_; }
  int32_t pad_id() const { return pad_; }
  bool add_bos_default() const { return add_bos_; }  // tokenizer.ggml.add_bos_token
  bool add_eos_default() const { return add_eos_; }  // tokenizer.ggml.add_eos_token
  // eos, eot, eom, and tokens named <|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|> ...
  bool is_end_of_generation(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }
  // Control, user-defined or unknown-type tokens.
  bool is_special(int32_t id) const;
  int32_t find_token(std::string_view text) const;  // exact vocabulary entry or -1

  TokenizerKind kind() const { return kind_; }
  const std::string& pre_name() const { return pre_name_; }  // tokenizer.ggml.pre as read
  const std::string& token_text(int32_t id) const;          // the vocabulary entry as stored
  TokenType token_type(int32_t id) const;
  float token_score(int32_t id) const;

 private:
  Tokenizer() = default;
  struct MergeSlot {
    uint64_t key;  // left id << 32 | right id; kNoMerge when the slot is empty
    int32_t rank, result;
  };
  struct Fragment {
    size_t begin, end;  // raw text span, when token < 0
    int32_t token;
  };

  void load(const GGUFFile& f);
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  void check_id(int32_t id) const;
  const MergeSlot* find_merge(int32_t left, int32_t right) const;

  TokenizerKind kind_ = TokenizerKind::BPE;
  std::string pre_name_;
  PreTokenizerKind pre_ = PreTokenizerKind::Gpt2;
  bool ignore_merges_ = false;  // llama3: a word that is a whole token skips merging
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1, pad_ = -1;

  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::vector<std::string> pieces_;  // token_to_piece of every id, computed at load
  // Open-addressing hash tables (power-of-two sizes, linear probing), read-only after load.
  std::vector<int32_t> vocab_slots_;     // token ids by text; -1 empty
  std::vector<MergeSlot> merge_slots_;  // BPE: (left, right) → rank, merged token
  int32_t byte_token_[256];  // BPE: token of the byte's GPT-2 character; SPM: <0xXX>; -1 if none
  std::vector<int32_t> special_tokens_;  // matched by partition(), longest text first
  std::vector<uint8_t> rstrip_;  // drop the whitespace after this special token when matching it
  std::vector<int32_t> eog_ids_;
  std::vector<uint8_t> is_eog_;
};

// Turns a stream of token pieces into text that never ends inside a UTF-8 character: push()
// returns only complete characters and holds back a partial one; invalid bytes become U+FFFD.
class Utf8StreamDecoder {
 public:
  std::string push(const std::string& bytes);
  // Returns what is held back (an unfinished character, as U+FFFD) and resets.
  std::string flush();
  bool pending() const { return !buf_.empty(); }

 private:
  std::string buf_;
};

// The GPT-2 byte ↔ unicode-character mapping of byte-level BPE vocabularies.
uint32_t gpt2_byte_to_codepoint(uint8_t b);
int gpt2_codepoint_to_byte(uint32_t cp);  // -1 when cp is not the image of a byte

}  // namespace edgevlm
