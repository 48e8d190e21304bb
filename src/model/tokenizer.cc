#include "model/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <queue>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/unicode.h"

namespace edgevlm {

namespace {

constexpr const char* kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space

struct Gpt2ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // images are < 324
  Gpt2ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes stand for themselves; the rest are moved past U+00FF in byte order.
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? b : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Gpt2ByteMap& gpt2_map() {
  static const Gpt2ByteMap m;
  return m;
}

// Text of a byte token "<0xXX>", or -1.
int parse_byte_token(const std::string& s) {
  if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(s[3]), lo = hex(s[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Maps each character of a byte-level BPE token back to its byte; characters that are not images
// of bytes (user text in added tokens) are kept as they are.
std::string gpt2_decode_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 1;
    uint32_t cp = 0;
    if (utf8_check(text.data() + i, text.size() - i, &len, &cp) != Utf8Status::Complete) {
      out += text[i];
      i += 1;
      continue;
    }
    const int b = gpt2_codepoint_to_byte(cp);
    if (b >= 0) out += static_cast<char>(b);
    else out.append(text, i, len);
    i += len;
  }
  return out;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    const size_t p = s.find(from, i);
    if (p == std::string_view::npos) break;
    out.append(s.substr(i, p - i));
    out.append(to);
    i = p + from.size();
  }
  out.append(s.substr(i));
  return out;
}

constexpr uint64_t kNoMerge = ~uint64_t{0};

uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

size_t table_size(size_t n) {  // a power of two, at most half full
  size_t s = 16;
  while (s < 2 * n) s *= 2;
  return s;
}

bool is_special_type(TokenType t) {
  return t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
}

}  // namespace

uint32_t gpt2_byte_to_codepoint(uint8_t b) { return gpt2_map().to_cp[b]; }

int gpt2_codepoint_to_byte(uint32_t cp) { return cp < 324 ? gpt2_map().to_byte[cp] : -1; }

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GGUFFile& f) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->load(f);
  return t;
}

void Tokenizer::load(const GGUFFile& f) {
  const char* path = f.path().c_str();
  EV_CHECK(f.has("tokenizer.ggml.model"), "%s: no tokenizer (tokenizer.ggml.model is missing)", path);
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model == "gpt2") {
    kind_ = TokenizerKind::BPE;
  } else if (model == "llama") {
    kind_ = TokenizerKind::SPM;
  } else {
    fail("%s: tokenizer.ggml.model '%s' is not supported (supported: gpt2, llama)", path, model.c_str());
  }

  EV_CHECK(f.has("tokenizer.ggml.tokens"), "%s: tokenizer.ggml.tokens is missing", path);
  tokens_ = f.get_strings("tokenizer.ggml.tokens");
  EV_CHECK(!tokens_.empty(), "%s: tokenizer.ggml.tokens is empty", path);
  EV_CHECK(tokens_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
           "%s: tokenizer.ggml.tokens has too many entries (%zu)", path, tokens_.size());
  const size_t n = tokens_.size();

  if (f.has("tokenizer.ggml.scores")) {
    scores_ = f.get_floats("tokenizer.ggml.scores");
    EV_CHECK(scores_.size() == n, "%s: tokenizer.ggml.scores has %zu entries but there are %zu tokens", path,
             scores_.size(), n);
  } else {
    scores_.assign(n, 0.0f);
  }
  types_.assign(n, TokenType::Normal);
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = f.get_ints("tokenizer.ggml.token_type");
    EV_CHECK(types.size() == n, "%s: tokenizer.ggml.token_type has %zu entries but there are %zu tokens", path,
             types.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EV_CHECK(types[i] >= 0 && types[i] <= 6, "%s: tokenizer.ggml.token_type[%zu] = %lld is not a token type (0..6)",
               path, i, static_cast<long long>(types[i]));
      types_[i] = static_cast<TokenType>(types[i]);
    }
  }

  vocab_slots_.assign(table_size(n), -1);
  const size_t vmask = vocab_slots_.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    for (size_t h = std::hash<std::string_view>{}(tokens_[i]) & vmask;; h = (h + 1) & vmask) {
      int32_t& slot = vocab_slots_[h];
      if (slot < 0 || tokens_[slot] == tokens_[i]) {
        slot = static_cast<int32_t>(i);  // a duplicate text: the last id wins, as in llama.cpp
        break;
      }
    }
  }

  // Special ids: -1 (or its u32 image) means "none"; anything else must name a token.
  auto read_id = [&](const char* key, int32_t fallback) -> int32_t {
    if (!f.has(key)) return fallback < static_cast<int32_t>(n) ? fallback : -1;
    const int64_t id = f.get_int(key);
    if (id == -1 || id == 0xFFFFFFFFll) return -1;
    EV_CHECK(id >= 0 && id < static_cast<int64_t>(n), "%s: %s = %lld is out of range (the vocabulary has %zu tokens)",
             path, key, static_cast<long long>(id), n);
    return static_cast<int32_t>(id);
  };
  const bool spm = kind_ == TokenizerKind::SPM;
  bos_ = read_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1);
  eos_ = read_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1);
  unk_ = read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
  eot_ = read_id("tokenizer.ggml.eot_token_id", -1);
  eom_ = read_id("tokenizer.ggml.eom_token_id", -1);
  pad_ = read_id("tokenizer.ggml.padding_token_id", -1);

  pre_name_ = f.get_string_or("tokenizer.ggml.pre", "default");
  if (!spm) {
    const std::string& p = pre_name_;
    if (p == "default" || p == "gpt-2" || p == "gpt2" || p == "mpt" || p == "olmo" || p == "jais") {
      pre_ = PreTokenizerKind::Gpt2;
    } else if (p == "starcoder" || p == "refact" || p == "command-r" || p == "smollm" || p == "codeshell" ||
               p == "exaone" || p == "minerva") {
      pre_ = PreTokenizerKind::Starcoder;
    } else if (p == "llama3" || p == "llama-v3" || p == "llama-bpe" || p == "falcon3" || p == "falcon-h1" ||
               p == "pixtral" || p == "midm-2.0" || p == "lfm2") {  // lfm2: LFM2 and LFM2-VL
      pre_ = PreTokenizerKind::Llama3;
      ignore_merges_ = true;
    } else if (p == "qwen2" || p == "deepseek-r1-qwen") {
      pre_ = PreTokenizerKind::Qwen2;
    } else {
      fail("%s: tokenizer.ggml.pre '%s' is not supported (supported: default, gpt-2, starcoder, llama-bpe, lfm2, qwen2 "
           "and their aliases)", path, p.c_str());
    }
  }
  add_bos_ = f.get_bool_or("tokenizer.ggml.add_bos_token", spm || pre_ == PreTokenizerKind::Llama3);
  add_eos_ = f.get_bool_or("tokenizer.ggml.add_eos_token", false);
  add_space_prefix_ = spm && f.get_bool_or("tokenizer.ggml.add_space_prefix", true);

  // Byte tokens: the GPT-2 character of each byte (BPE), or <0xXX> falling back to the raw byte (SPM).
  for (int b = 0; b < 256; ++b) {
    std::string key;
    if (spm) {
      static const char* hex = "0123456789ABCDEF";
      key = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      if (find_token(key) < 0) key = std::string(1, static_cast<char>(b));
    } else {
      utf8_append(key, gpt2_byte_to_codepoint(static_cast<uint8_t>(b)));
    }
    byte_token_[b] = find_token(key);
  }

  if (!spm) {
    EV_CHECK(f.has("tokenizer.ggml.merges"), "%s: tokenizer.ggml.merges is missing (needed by a gpt2 tokenizer)",
             path);
    // Read in place: a copy of a 150k-entry string array costs as much as the rest of the load.
    const GGUFValue* mv = f.find("tokenizer.ggml.merges");
    if (mv->type != GGUFType::ARRAY || !mv->arr || mv->arr->elem_type != GGUFType::STRING) {
      f.get_strings("tokenizer.ggml.merges");  // throws the reader's error naming the type
      fail("%s: tokenizer.ggml.merges is not an array of strings", path);
    }
    const std::vector<std::string>& merges = mv->arr->strings;
    merge_slots_.assign(table_size(merges.size()), MergeSlot{kNoMerge, 0, 0});
    const size_t mmask = merge_slots_.size() - 1;
    std::string joined;
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string& m = merges[i];
      const size_t sp = m.find(' ', 1);
      EV_CHECK(sp != std::string::npos && sp + 1 < m.size(),
               "%s: tokenizer.ggml.merges[%zu] '%s' is not two tokens separated by a space", path, i, m.c_str());
      const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
      joined.assign(left);
      joined.append(right);
      const int32_t l = find_token(left), r = find_token(right), res = find_token(joined);
      EV_CHECK(l >= 0 && r >= 0, "%s: tokenizer.ggml.merges[%zu] '%s' names a token that is not in the vocabulary",
               path, i, m.c_str());
      EV_CHECK(res >= 0, "%s: tokenizer.ggml.merges[%zu] '%s' makes '%s', which is not in the vocabulary", path, i,
               m.c_str(), joined.c_str());
      const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
      for (size_t h = mix64(key) & mmask;; h = (h + 1) & mmask) {
        MergeSlot& slot = merge_slots_[h];
        if (slot.key == key) break;  // a repeated pair keeps its first rank
        if (slot.key == kNoMerge) {
          slot = {key, static_cast<int32_t>(i), res};
          break;
        }
      }
    }
  }

  // Tokens named like turn or text ends (and FIM markers) are control tokens whatever the file
  // says, as in llama.cpp: then plain text that spells them stays text.
  auto promote = [&](int32_t id) {
    if (id >= 0 && types_[id] != TokenType::Control) types_[id] = TokenType::Control;
  };
  auto first_named = [&](std::initializer_list<const char*> names) {
    for (const char* name : names) {
      if (find_token(name) >= 0) return find_token(name);
    }
    return -1;
  };
  if (eot_ < 0) {
    eot_ = first_named({"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                        "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>"});
    promote(eot_);
  }
  if (eom_ < 0) {
    eom_ = find_token("<|eom_id|>");
    promote(eom_);
  }
  for (const char* name : {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|fim_suffix|>", "<fim-suffix>",
                           "<fim_suffix>", "<SUF>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>",
                           "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "<|fim_repo|>", "<|repo_name|>",
                           "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"}) {
    promote(find_token(name));
  }
  is_eog_.assign(n, 0);
  for (const char* name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                           "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>",
                           "<eos>"}) {
    const int32_t id = find_token(name);
    if (id < 0) continue;
    is_eog_[id] = 1;
    promote(id);
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id >= 0) is_eog_[id] = 1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (is_eog_[i]) eog_ids_.push_back(static_cast<int32_t>(i));
  }

  for (size_t i = 0; i < n; ++i) {
    if (is_special_type(types_[i]) && !tokens_[i].empty()) special_tokens_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

  // Phi-3's special tokens swallow the whitespace after them (HF rstrip). GGUF does not record
  // this, so llama.cpp keys it on the model name, and so do we.
  rstrip_.assign(n, 0);
  std::string name = f.get_string_or("general.name", "");
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : special_tokens_) rstrip_[id] = 1;
    if (find_token("</s>") >= 0) rstrip_[find_token("</s>")] = 1;
    for (const char* keep : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (find_token(keep) >= 0) rstrip_[find_token(keep)] = 0;
    }
  }

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = tokens_[i];
    switch (types_[i]) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::UserDefined:
        pieces_[i] = t;
        break;
      case TokenType::Unused:
        break;
      case TokenType::Byte: {
        const int b = parse_byte_token(t);
        if (b >= 0) pieces_[i] = std::string(1, static_cast<char>(b));
        else pieces_[i] = spm ? t : gpt2_decode_text(t);
        break;
      }
      case TokenType::Normal:
      case TokenType::Undefined:
        pieces_[i] = spm ? replace_all(t, kSpmSpace, " ") : gpt2_decode_text(t);
        break;
    }
  }
}

void Tokenizer::check_id(int32_t id) const {
  EV_CHECK(id >= 0 && id < n_vocab(), "token id %d is out of range (the vocabulary has %d tokens)", id, n_vocab());
}

int32_t Tokenizer::find_token(std::string_view text) const {
  const size_t mask = vocab_slots_.size() - 1;
  for (size_t h = std::hash<std::string_view>{}(text) & mask;; h = (h + 1) & mask) {
    const int32_t id = vocab_slots_[h];
    if (id < 0) return -1;
    if (tokens_[id] == text) return id;
  }
}

const Tokenizer::MergeSlot* Tokenizer::find_merge(int32_t left, int32_t right) const {
  if (merge_slots_.empty()) return nullptr;
  const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t h = mix64(key) & mask;; h = (h + 1) & mask) {
    const MergeSlot& slot = merge_slots_[h];
    if (slot.key == key) return &slot;
    if (slot.key == kNoMerge) return nullptr;
  }
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return tokens_[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id);
  return types_[id];
}

float Tokenizer::token_score(int32_t id) const {
  check_id(id);
  return scores_[id];
}

bool Tokenizer::is_end_of_generation(int32_t id) const { return id >= 0 && id < n_vocab() && is_eog_[id]; }

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < n_vocab() && is_special_type(types_[id]); }

std::string Tokenizer::token_to_piece(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  bool strip_space = kind_ == TokenizerKind::SPM && add_space_prefix_;
  for (int32_t id : ids) {
    check_id(id);
    const TokenType t = types_[id];
    if (skip_special && (t == TokenType::Control || t == TokenType::Unknown)) continue;
    const std::string& p = pieces_[id];
    if (strip_space) {
      strip_space = false;
      if (!p.empty() && p[0] == ' ') {
        out.append(p, 1, std::string::npos);
        continue;
      }
    }
    out += p;
  }
  return out;
}

// Splits the text around special-token strings, longest first (as llama.cpp does): a later, shorter
// token is only searched for in the raw text that longer ones left.
std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({0, text.size(), -1});
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    const TokenType t = types_[id];
    if (!parse_special && (t == TokenType::Control || t == TokenType::Unknown)) continue;
    const std::string& s = tokens_[id];
    if (text.find(s) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t pos = fr.begin;
      while (pos < fr.end) {
        const size_t hit = text.substr(0, fr.end).find(s, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({pos, hit, -1});
        next.push_back({hit, hit + s.size(), id});
        pos = hit + s.size();
        if (rstrip_[id]) {
          while (pos < fr.end && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
        }
      }
      if (pos < fr.end) next.push_back({pos, fr.end, -1});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  bool prev_special = true;  // SPM: the text after BOS or a special token gets the leading space
  for (const Fragment& fr : partition(text, parse_special)) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      prev_special = true;
      continue;
    }
    const std::string_view raw = text.substr(fr.begin, fr.end - fr.begin);
    if (kind_ == TokenizerKind::BPE) {
      encode_bpe(raw, out);
    } else {
      encode_spm(raw, add_space_prefix_ && prev_special, out);
    }
    prev_special = false;
  }
  return out;
}

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  size_t pos = 0;
  for (size_t len : pretokenize(text, pre_)) {
    bpe_word(text.substr(pos, len), out);
    pos += len;
  }
}

// Merges the pair of lowest rank (leftmost among equals) until none is left, like llama.cpp and
// the HF BPE model. Symbols start as single bytes, each standing for its GPT-2 character's token.
void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    std::string enc;
    for (unsigned char c : word) utf8_append(enc, gpt2_byte_to_codepoint(c));
    const int32_t id = find_token(enc);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() == 1) {
    const int32_t id = byte_token_[static_cast<unsigned char>(word[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  struct Sym {
    int32_t id;  // -1: no token (cannot merge); a merged-away symbol has len 0
    int32_t prev, next;
    uint32_t len;
  };
  struct Bigram {
    int32_t rank, left, right, left_id, right_id, result;
    bool operator<(const Bigram& o) const {  // the heap pops the greatest: lowest rank, then leftmost
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  thread_local std::vector<Sym> sym;  // reused: words are many and short
  thread_local std::vector<Bigram> heap;
  const int n = static_cast<int>(word.size());
  sym.resize(n);
  for (int i = 0; i < n; ++i) {
    sym[i] = {byte_token_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, 1};
  }
  heap.clear();
  auto add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const int32_t a = sym[l].id, b = sym[r].id;
    if (a < 0 || b < 0) return;
    const MergeSlot* m = find_merge(a, b);
    if (!m) return;
    heap.push_back({m->rank, l, r, a, b, m->result});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int i = 1; i < n; ++i) add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Bigram bg = heap.back();
    heap.pop_back();
    Sym& l = sym[bg.left];
    Sym& r = sym[bg.right];
    if (l.len == 0 || r.len == 0 || l.id != bg.left_id || r.id != bg.right_id) continue;  // stale
    l.id = bg.result;
    l.len += r.len;
    r.len = 0;
    r.id = -1;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = bg.left;
    add(l.prev, bg.left);
    add(bg.left, l.next);
  }
  for (int i = 0; i != -1; i = sym[i].next) {
    // A byte whose character is not in the vocabulary is dropped, as llama.cpp does.
    if (sym[i].id >= 0) out.push_back(sym[i].id);
  }
}

// llama.cpp's SPM tokenizer: start from UTF-8 characters and repeatedly merge the adjacent pair
// whose concatenation is the vocabulary entry of highest score (leftmost among equals); what is
// left unmatched falls back to byte tokens.
void Tokenizer::encode_spm(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const {
  std::string s;
  if (space_prefix) s = kSpmSpace;
  s += replace_all(text, " ", kSpmSpace);
  struct Sym {
    uint32_t start, len;
    int32_t prev, next;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Bigram& o) const {  // pops highest score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::vector<Sym> sym;
  sym.reserve(s.size());
  for (size_t off = 0; off < s.size();) {
    const size_t len = std::min(utf8_lead_len(static_cast<unsigned char>(s[off])), s.size() - off);
    const int32_t i = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), i - 1, off + len < s.size() ? i + 1 : -1});
    off += len;
  }
  std::priority_queue<Bigram> q;
  auto add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string_view t(s.data() + sym[l].start, sym[l].len + sym[r].len);
    const int32_t id = find_token(t);
    if (id >= 0) q.push({scores_[id], l, r, static_cast<uint32_t>(t.size())});
  };
  for (size_t i = 1; i < sym.size(); ++i) add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!q.empty()) {
    const Bigram bg = q.top();
    q.pop();
    Sym& l = sym[bg.left];
    Sym& r = sym[bg.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != bg.size) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = bg.left;
    add(l.prev, bg.left);
    add(bg.left, l.next);
  }
  for (int32_t i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    const std::string_view t(s.data() + sym[i].start, sym[i].len);
    const int32_t id = find_token(t);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    bool all_bytes = true;
    for (unsigned char c : t) all_bytes = all_bytes && byte_token_[c] >= 0;
    if (all_bytes) {
      for (unsigned char c : t) out.push_back(byte_token_[c]);
    } else {
      EV_CHECK(unk_ >= 0, "cannot tokenize '%.*s': no byte tokens and no unknown token in the vocabulary",
               static_cast<int>(t.size()), t.data());
      out.push_back(unk_);
    }
  }
}

std::string Utf8StreamDecoder::push(const std::string& bytes) {
  buf_ += bytes;
  std::string out;
  size_t i = 0;
  while (i < buf_.size()) {
    size_t len = 1;
    uint32_t cp = 0;
    const Utf8Status st = utf8_check(buf_.data() + i, buf_.size() - i, &len, &cp);
    if (st == Utf8Status::Incomplete) break;
    if (st == Utf8Status::Complete) out.append(buf_, i, len);
    else out += "\xEF\xBF\xBD";
    i += len;
  }
  buf_.erase(0, i);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out = buf_.empty() ? "" : "\xEF\xBF\xBD";
  buf_.clear();
  return out;
}

}  // namespace edgevlm
