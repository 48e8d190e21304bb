#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/chat_template.h"
#include "model/tokenizer_pretok.h"
#include "model/unicode.h"

namespace edgevlm {
namespace {

const char* kSpace = "\xE2\x96\x81";  // ▁

std::string shared_dir() {
  const char* env = std::getenv("EDGEVLM_SHARED_DIR");
  return env && *env ? std::string(env) : std::string(EDGEVLM_SOURCE_DIR) + "/../shared";
}

std::string vocab_path(const std::string& name) { return shared_dir() + "/testdata/tokenizer/" + name; }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The vector files are llama.cpp's test-tokenizer-0 format (see the README beside them).
struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<VectorCase> read_vectors(const std::string& gguf_path) {
  const std::string inp = read_all(gguf_path + ".inp");
  const std::string outp = read_all(gguf_path + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  while (true) {
    const size_t p = inp.find(sep, pos);
    if (p == std::string::npos) break;
    texts.push_back(inp.substr(pos, p - pos));
    pos = p + sep.size();
  }
  EXPECT_EQ(pos, inp.size()) << "the .inp file ends with a separator";
  std::vector<VectorCase> cases;
  std::istringstream lines(outp);
  std::string line;
  for (const std::string& t : texts) {
    EXPECT_TRUE(static_cast<bool>(std::getline(lines, line))) << "missing output line";
    VectorCase c{t, {}};
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

class TokenizerVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerVectors, EncodeAndDecodeExactly) {
  const std::string path = vocab_path(GetParam());
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "test vectors not found: " << path;
  auto f = GGUFFile::open(path);
  auto tok = Tokenizer::from_gguf(*f);
  const std::vector<VectorCase> cases = read_vectors(path);
  ASSERT_GT(cases.size(), 40u);
  for (const VectorCase& c : cases) {
    const std::vector<int32_t> got = tok->encode(c.text, /*add_bos=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, c.ids) << "text '" << c.text << "'\n got:" << show(got) << "\nwant:" << show(c.ids);
    // Our SPM decode removes the space the encoder added, so the round trip is exact for all kinds.
    EXPECT_EQ(tok->decode(c.ids), c.text) << "decoding" << show(c.ids);
  }
}

INSTANTIATE_TEST_SUITE_P(SharedFiles, TokenizerVectors,
                         ::testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-starcoder.gguf",
                                           "ggml-vocab-phi-3.gguf"));

std::unique_ptr<Tokenizer> open_shared(const std::string& name, std::unique_ptr<GGUFFile>& holder) {
  const std::string path = vocab_path(name);
  if (!std::filesystem::exists(path)) return nullptr;
  holder = GGUFFile::open(path);
  return Tokenizer::from_gguf(*holder);
}

TEST(Tokenizer, Gpt2SpecialTokensAndMetadata) {
  std::unique_ptr<GGUFFile> f;
  auto tok = open_shared("ggml-vocab-gpt-2.gguf", f);
  if (!tok) GTEST_SKIP() << "gpt-2 vocab not found";
  EXPECT_EQ(tok->kind(), TokenizerKind::BPE);
  EXPECT_EQ(tok->n_vocab(), 50257);
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_FALSE(tok->add_bos_default());
  EXPECT_TRUE(tok->is_end_of_generation(50256));
  EXPECT_TRUE(tok->is_special(50256));
  EXPECT_FALSE(tok->is_special(0));
  EXPECT_EQ(tok->find_token("<|endoftext|>"), 50256);
  EXPECT_EQ(tok->find_token("not a token at all"), -1);

  const std::string text = "a<|endoftext|>b";
  EXPECT_EQ(tok->encode(text, false, true), (std::vector<int32_t>{64, 50256, 65}));
  const std::vector<int32_t> plain = tok->encode(text, false, false);  // the control token is plain text
  EXPECT_GT(plain.size(), 3u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok->decode(plain), text);
  EXPECT_EQ(tok->encode("a", true, false), (std::vector<int32_t>{50256, 64}));
  EXPECT_EQ(tok->decode({64, 50256, 65}, /*skip_special=*/true), "ab");
  EXPECT_EQ(tok->decode({64, 50256, 65}), text);
  EXPECT_EQ(tok->token_to_piece(220), " ");  // "Ġ"
  EXPECT_THROW(tok->token_to_piece(50257), Error);
  EXPECT_THROW(tok->token_to_piece(-1), Error);
  EXPECT_THROW(tok->decode({1, 99999}), Error);
}

TEST(Tokenizer, Phi3SentencePieceDetails) {
  std::unique_ptr<GGUFFile> f;
  auto tok = open_shared("ggml-vocab-phi-3.gguf", f);
  if (!tok) GTEST_SKIP() << "phi-3 vocab not found";
  EXPECT_EQ(tok->kind(), TokenizerKind::SPM);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 32000);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_TRUE(tok->is_end_of_generation(32000));
  EXPECT_TRUE(tok->is_end_of_generation(32007));  // <|end|>, found by name
  EXPECT_FALSE(tok->is_end_of_generation(15043));

  const std::vector<int32_t> hello = tok->encode("Hello world", true, false);
  ASSERT_EQ(hello.size(), 3u);
  EXPECT_EQ(hello[0], 1);
  EXPECT_EQ(tok->token_text(hello[1]), std::string(kSpace) + "Hello");
  EXPECT_EQ(tok->decode(hello, /*skip_special=*/true), "Hello world");
  EXPECT_EQ(tok->token_to_piece(hello[1]), " Hello");  // streaming keeps the space

  // Control tokens only with parse_special; the text after one gets the leading space again.
  const std::vector<int32_t> chat = tok->encode("<|user|>\nHi<|end|>", false, true);
  ASSERT_GE(chat.size(), 3u);
  EXPECT_EQ(chat.front(), 32010);
  EXPECT_EQ(chat.back(), 32007);
  const std::vector<int32_t> raw = tok->encode("<|user|>", false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 32010), 0);
  // </s> is stored as user-defined, but like llama.cpp we treat end-of-text names as control
  // tokens: plain text that spells them stays text.
  EXPECT_EQ(tok->token_type(2), TokenType::Control);
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_NE(tok->encode("a</s>", false, false).back(), 2);
  EXPECT_EQ(tok->encode("a</s>", false, true).back(), 2);
  // Phi-3 (by general.name, as in llama.cpp): the whitespace after a special token is dropped, so
  // the next word gets SentencePiece's added space instead. Reference: llama.cpp via node-llama-cpp
  // 3.21.1, which gives [32010, 6324, 32007] ("<|user|>", "▁Hi", "<|end|>").
  EXPECT_EQ(tok->encode("<|user|>\n Hi<|end|>", false, true), (std::vector<int32_t>{32010, 6324, 32007}));
  EXPECT_EQ(tok->eot_id(), 32007);

  // Byte fallback: a character with no token of its own becomes its UTF-8 bytes.
  const std::vector<int32_t> rare = tok->encode("\xF0\x9F\xA6\x99", false, false);  // 🦙
  ASSERT_EQ(rare.size(), 5u);  // ▁ + 4 bytes
  EXPECT_EQ(tok->token_text(rare[1]), "<0xF0>");
  EXPECT_EQ(tok->token_type(rare[1]), TokenType::Byte);
  EXPECT_EQ(tok->token_to_piece(rare[1]), "\xF0");
}

// Streaming decode of real tokens: emoji and CJK characters span several byte tokens.
TEST(Tokenizer, StreamingDecodeOfSplitCharacters) {
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf"}) {
    std::unique_ptr<GGUFFile> f;
    auto tok = open_shared(name, f);
    if (!tok) GTEST_SKIP() << name << " not found";
    const std::string text = "llama \xF0\x9F\xA6\x99 and \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F "
                             "\xE6\x88\x91\xE6\x83\xB3 ok";  // 🦙 😶‍🌫️ 我想
    const std::vector<int32_t> ids = tok->encode(text, false, false);
    Utf8StreamDecoder dec;
    std::string streamed;
    int held = 0;
    for (int32_t id : ids) {
      const std::string piece = tok->token_to_piece(id);
      const std::string out = dec.push(piece);
      if (out.size() < piece.size()) ++held;
      // Whatever comes out is whole characters.
      size_t i = 0;
      while (i < out.size()) {
        size_t len;
        uint32_t cp;
        ASSERT_EQ(utf8_check(out.data() + i, out.size() - i, &len, &cp), Utf8Status::Complete) << name;
        i += len;
      }
      streamed += out;
    }
    EXPECT_FALSE(dec.pending());
    streamed += dec.flush();
    EXPECT_GT(held, 0) << name << ": some token should end inside a character";
    std::string want = text;
    if (tok->kind() == TokenizerKind::SPM) want = " " + want;  // pieces keep the added space
    EXPECT_EQ(streamed, want) << name;
  }
}

TEST(Utf8StreamDecoder, EmojiSplitAtEveryByte) {
  const std::string s = "a\xF0\x9F\x98\x80" "b\xC3\xA9\xE2\x82\xAC";  // a😀bé€
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    Utf8StreamDecoder d;
    const std::string first = d.push(s.substr(0, cut));
    const std::string second = d.push(s.substr(cut));
    EXPECT_EQ(first + second + d.flush(), s) << cut;
    EXPECT_TRUE(first.empty() || first.back() != '\xF0');
  }
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("\xF0\x9F"), "");
  EXPECT_TRUE(d.pending());
  EXPECT_EQ(d.push("\x98"), "");
  EXPECT_EQ(d.push("\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_FALSE(d.pending());
}

TEST(Utf8StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  const std::string fffd = "\xEF\xBF\xBD";
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("\xFF" "a"), fffd + "a");             // never valid: replaced at once
  EXPECT_EQ(d.push("\xE2\x82"), "");                     // could still become €
  EXPECT_EQ(d.push("b"), fffd + "b");                    // ...but did not
  EXPECT_EQ(d.push("\xC0\xAF"), fffd + fffd);            // overlong '/'
  EXPECT_EQ(d.push("\xED\xA0\x80"), fffd + fffd + fffd); // UTF-16 surrogate
  EXPECT_EQ(d.push("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // past U+10FFFF
  EXPECT_EQ(d.push("\xE2\x82"), "");
  EXPECT_EQ(d.flush(), fffd);                            // unfinished at the end
  EXPECT_EQ(d.flush(), "");
  EXPECT_EQ(d.push("ok"), "ok");
}

TEST(Unicode, GeneralCategoriesAndWhiteSpace) {
  EXPECT_TRUE(unicode_is_letter('a'));
  EXPECT_TRUE(unicode_is_letter(0xE9));     // é
  EXPECT_TRUE(unicode_is_letter(0x4E2D));   // 中
  EXPECT_TRUE(unicode_is_letter(0x0431));   // б
  EXPECT_TRUE(unicode_is_number('7'));
  EXPECT_TRUE(unicode_is_number(0xBD));     // ½ (No)
  EXPECT_TRUE(unicode_is_number(0x0663));   // Arabic-Indic three (Nd)
  EXPECT_TRUE(unicode_is_number(0x2167));   // Roman numeral eight (Nl)
  EXPECT_EQ(unicode_class(0x0301), UnicodeClass::Mark);
  EXPECT_EQ(unicode_class(0x17B6), UnicodeClass::Mark);  // Khmer vowel sign: not a letter
  EXPECT_EQ(unicode_class(0x1F999), UnicodeClass::Symbol);
  EXPECT_EQ(unicode_class('!'), UnicodeClass::Punctuation);
  EXPECT_EQ(unicode_class(0x200D), UnicodeClass::Other);
  EXPECT_EQ(unicode_class(0x0378), UnicodeClass::Unassigned);
  EXPECT_EQ(unicode_class(0x110000), UnicodeClass::Unassigned);
  for (uint32_t ws : {0x09u, 0x0Au, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x2009u, 0x3000u}) EXPECT_TRUE(unicode_is_whitespace(ws)) << ws;
  for (uint32_t no : {0x1Cu, 0x200Bu, 0x61u, 0x0u}) EXPECT_FALSE(unicode_is_whitespace(no)) << no;
}

std::vector<std::string> split(const std::string& text, PreTokenizerKind kind) {
  std::vector<std::string> words;
  size_t pos = 0;
  for (size_t len : pretokenize(text, kind)) {
    words.push_back(text.substr(pos, len));
    pos += len;
  }
  EXPECT_EQ(pos, text.size());
  return words;
}

// Expected splits worked out by hand from each regex's alternatives (first match wins, greedy).
TEST(PreTokenizer, RegexSemantics) {
  using V = std::vector<std::string>;
  const std::string t = "I'M 12345 ok\n\n  hi";
  EXPECT_EQ(split(t, PreTokenizerKind::Gpt2), (V{"I", "'", "M", " 12345", " ok", "\n\n ", " hi"}));
  EXPECT_EQ(split(t, PreTokenizerKind::Starcoder),
            (V{"I", "'", "M", " ", "1", "2", "3", "4", "5", " ok", "\n\n ", " hi"}));
  EXPECT_EQ(split(t, PreTokenizerKind::Llama3), (V{"I", "'M", " ", "123", "45", " ok", "\n\n", " ", " hi"}));
  EXPECT_EQ(split(t, PreTokenizerKind::Qwen2), (V{"I", "'M", " ", "1", "2", "3", "4", "5", " ok", "\n\n", " ", " hi"}));
  EXPECT_EQ(split("they're  (x)!!\t", PreTokenizerKind::Gpt2), (V{"they", "'re", " ", " (", "x", ")!!", "\t"}));
  EXPECT_EQ(split("a.\n\nb", PreTokenizerKind::Llama3), (V{"a", ".\n\n", "b"}));
  EXPECT_EQ(split("\tword", PreTokenizerKind::Llama3), (V{"\tword"}));
  EXPECT_EQ(split("\tword", PreTokenizerKind::Gpt2), (V{"\t", "word"}));
  // Invalid UTF-8 is kept byte for byte and groups like punctuation.
  EXPECT_EQ(split("ab\xFF\xFEz", PreTokenizerKind::Gpt2), (V{"ab", "\xFF\xFE", "z"}));
  EXPECT_TRUE(split("", PreTokenizerKind::Gpt2).empty());
}

// Random strings over a tricky alphabet (contractions, capitals, U+017F, marks, non-ASCII digits,
// Unicode spaces, emoji, \r\n) split by the Python `regex` module (2026.5.9) with each tokenizer's
// regex from its tokenizer.json; Starcoder splits \p{N} first, then applies the GPT-2 regex.
// (240k such strings were compared while writing the splitters; these are a sample.)
struct RegexCase {
  const char* text;
  std::vector<std::string> gpt2, starcoder, llama3, qwen2;
};

TEST(PreTokenizer, MatchesPythonRegexModule) {
  const std::vector<RegexCase> cases = {
    {"I'LL \305\277ee 1234567 x'\305\277e y'S\015\012\015\012  \0119\302\275",
     {"I", "'", "LL", " \305\277ee", " 1234567", " x", "'", "\305\277e", " y", "'", "S", "\015\012\015\012  ", "\011", "9\302\275"},
     {"I", "'", "LL", " \305\277ee", " ", "1", "2", "3", "4", "5", "6", "7", " x", "'", "\305\277e", " y", "'", "S", "\015\012\015\012  \011", "9", "\302\275"},
     {"I", "'LL", " \305\277ee", " ", "123", "456", "7", " x", "'\305\277", "e", " y", "'S", "\015\012\015\012", "  ", "\011", "9\302\275"},
     {"I", "'LL", " \305\277ee", " ", "1", "2", "3", "4", "5", "6", "7", " x", "'\305\277e", " y", "'S", "\015\012\015\012", "  ", "\011", "9", "\302\275"},
    },
    {"\302\205D\302\240\012\303\251Z a\314\2014,\341\236\200d\360\237\230\200\342\200\2503\360\237\230\200s.e5l\302\2750\305\2770Yrc",
     {"\302\205", "D", "\302\240", "\012", "\303\251Z", " a", "\314\201", "4", ",", "\341\236\200d", "\360\237\230\200", "\342\200\250", "3", "\360\237\230\200", "s", ".", "e", "5", "l", "\302\2750", "\305\277", "0", "Yrc"},
     {"\302\205", "D", "\302\240", "\012", "\303\251Z", " a", "\314\201", "4", ",", "\341\236\200d", "\360\237\230\200", "\342\200\250", "3", "\360\237\230\200", "s", ".", "e", "5", "l", "\302\275", "0", "\305\277", "0", "Yrc"},
     {"\302\205D", "\302\240\012", "\303\251Z", " a", "\314\201", "4", ",\341\236\200d", "\360\237\230\200", "\342\200\250", "3", "\360\237\230\200s", ".e", "5", "l", "\302\2750", "\305\277", "0", "Yrc"},
     {"\302\205D", "\302\240\012", "\303\251Z", " a", "\314\201", "4", ",\341\236\200d", "\360\237\230\200", "\342\200\250", "3", "\360\237\230\200s", ".e", "5", "l", "\302\275", "0", "\305\277", "0", "Yrc"},
    },
    {"\302\240\320\261d\314\201Dv\012a('E\342\200\250\303\2513S5\302\275 \341\236\266\303\251",
     {"\302\240", "\320\261d", "\314\201", "Dv", "\012", "a", "('", "E", "\342\200\250", "\303\251", "3", "S", "5\302\275", " \341\236\266", "\303\251"},
     {"\302\240", "\320\261d", "\314\201", "Dv", "\012", "a", "('", "E", "\342\200\250", "\303\251", "3", "S", "5", "\302\275", " \341\236\266", "\303\251"},
     {"\302\240\320\261d", "\314\201Dv", "\012", "a", "('", "E", "\342\200\250\303\251", "3", "S", "5\302\275", " \341\236\266", "\303\251"},
     {"\302\240\320\261d", "\314\201Dv", "\012", "a", "('", "E", "\342\200\250\303\251", "3", "S", "5", "\302\275", " \341\236\266", "\303\251"},
    },
    {"e.\302\240SeV\344\270\255RmRv 00\344\270\255v4\012\303\2377 R,1T\305\277 bs'",
     {"e", ".", "\302\240", "SeV\344\270\255RmRv", " 00", "\344\270\255v", "4", "\012", "\303\237", "7", " R", ",", "1", "T\305\277", " bs", "'"},
     {"e", ".", "\302\240", "SeV\344\270\255RmRv", " ", "0", "0", "\344\270\255v", "4", "\012", "\303\237", "7", " R", ",", "1", "T\305\277", " bs", "'"},
     {"e", ".", "\302\240SeV\344\270\255RmRv", " ", "00", "\344\270\255v", "4", "\012", "\303\237", "7", " R", ",", "1", "T\305\277", " bs", "'"},
     {"e", ".", "\302\240SeV\344\270\255RmRv", " ", "0", "0", "\344\270\255v", "4", "\012", "\303\237", "7", " R", ",", "1", "T\305\277", " bs", "'"},
    },
    {"(\303\251'\303\251-\320\261!\341\236\200D1Y!\303\251\302\2757\0126\012M\0125",
     {"(", "\303\251", "'", "\303\251", "-", "\320\261", "!", "\341\236\200D", "1", "Y", "!", "\303\251", "\302\2757", "\012", "6", "\012", "M", "\012", "5"},
     {"(", "\303\251", "'", "\303\251", "-", "\320\261", "!", "\341\236\200D", "1", "Y", "!", "\303\251", "\302\275", "7", "\012", "6", "\012", "M", "\012", "5"},
     {"(\303\251", "'\303\251", "-\320\261", "!\341\236\200D", "1", "Y", "!\303\251", "\302\2757", "\012", "6", "\012", "M", "\012", "5"},
     {"(\303\251", "'\303\251", "-\320\261", "!\341\236\200D", "1", "Y", "!\303\251", "\302\275", "7", "\012", "6", "\012", "M", "\012", "5"},
    },
    {"9- \302\275d\302\275\320\261 t\305\277 \015\343\200\200\341\236\200e \331\243 \344\270\255l (\302\2752('3'a.",
     {"9", "-", " \302\275", "d", "\302\275", "\320\261", " t\305\277", " \015", "\343\200\200", "\341\236\200e", " \331\243", " \344\270\255l", " (", "\302\2752", "('", "3", "'", "a", "."},
     {"9", "-", " ", "\302\275", "d", "\302\275", "\320\261", " t\305\277", " \015", "\343\200\200", "\341\236\200e", " ", "\331\243", " \344\270\255l", " (", "\302\275", "2", "('", "3", "'", "a", "."},
     {"9", "-", " ", "\302\275", "d", "\302\275", "\320\261", " t\305\277", " \015", "\343\200\200\341\236\200e", " ", "\331\243", " \344\270\255l", " (", "\302\2752", "('", "3", "'a", "."},
     {"9", "-", " ", "\302\275", "d", "\302\275", "\320\261", " t\305\277", " \015", "\343\200\200\341\236\200e", " ", "\331\243", " \344\270\255l", " (", "\302\275", "2", "('", "3", "'a", "."},
    },
    {" 2L \320\2617\344\270\255'\303\251ar\305\277\341\236\2003a\342\200\250\012LK\302\2754 \320\261\360\237\230\200\302\205 3cM",
     {" 2", "L", " \320\261", "7", "\344\270\255", "'", "\303\251ar\305\277\341\236\200", "3", "a", "\342\200\250", "\012", "LK", "\302\2754", " \320\261", "\360\237\230\200", "\302\205", " 3", "cM"},
     {" ", "2", "L", " \320\261", "7", "\344\270\255", "'", "\303\251ar\305\277\341\236\200", "3", "a", "\342\200\250", "\012", "LK", "\302\275", "4", " \320\261", "\360\237\230\200", "\302\205 ", "3", "cM"},
     {" ", "2", "L", " \320\261", "7", "\344\270\255", "'\303\251ar\305\277\341\236\200", "3", "a", "\342\200\250\012", "LK", "\302\2754", " \320\261", "\360\237\230\200", "\302\205", " ", "3", "cM"},
     {" ", "2", "L", " \320\261", "7", "\344\270\255", "'\303\251ar\305\277\341\236\200", "3", "a", "\342\200\250\012", "LK", "\302\275", "4", " \320\261", "\360\237\230\200", "\302\205", " ", "3", "cM"},
    },
    {"\012TYS\320\261\011! 2m_\303\2510 \360\237\246\231'ee\342\205\247-\320\2610, 4 \360\237\230\200(1\343\200\200",
     {"\012", "TYS\320\261", "\011", "!", " 2", "m", "_", "\303\251", "0", " \360\237\246\231'", "ee", "\342\205\247", "-", "\320\261", "0", ",", " 4", " \360\237\230\200(", "1", "\343\200\200"},
     {"\012", "TYS\320\261", "\011", "!", " ", "2", "m", "_", "\303\251", "0", " \360\237\246\231'", "ee", "\342\205\247", "-", "\320\261", "0", ",", " ", "4", " \360\237\230\200(", "1", "\343\200\200"},
     {"\012", "TYS\320\261", "\011", "!", " ", "2", "m", "_\303\251", "0", " \360\237\246\231'", "ee", "\342\205\247", "-\320\261", "0", ",", " ", "4", " \360\237\230\200(", "1", "\343\200\200"},
     {"\012", "TYS\320\261", "\011", "!", " ", "2", "m", "_\303\251", "0", " \360\237\246\231'", "ee", "\342\205\247", "-\320\261", "0", ",", " ", "4", " \360\237\230\200(", "1", "\343\200\200"},
    },
    {"\302\240LT\341\236\2008\360\237\246\231\342\200\250br'\303\237T'a\341\236\200 b\012\344\270\255 LEs_Ys'",
     {"\302\240", "LT\341\236\200", "8", "\360\237\246\231", "\342\200\250", "br", "'", "\303\237T", "'", "a\341\236\200", " b", "\012", "\344\270\255", " LEs", "_", "Ys", "'"},
     {"\302\240", "LT\341\236\200", "8", "\360\237\246\231", "\342\200\250", "br", "'", "\303\237T", "'", "a\341\236\200", " b", "\012", "\344\270\255", " LEs", "_", "Ys", "'"},
     {"\302\240LT\341\236\200", "8", "\360\237\246\231", "\342\200\250br", "'\303\237T", "'a\341\236\200", " b", "\012", "\344\270\255", " LEs", "_Ys", "'"},
     {"\302\240LT\341\236\200", "8", "\360\237\246\231", "\342\200\250br", "'\303\237T", "'a\341\236\200", " b", "\012", "\344\270\255", " LEs", "_Ys", "'"},
    },
    {"7 l\302\275S\320\26172r\342\200\215L  ,T30.\341\236\200dreEV\341\236\266D",
     {"7", " l", "\302\275", "S\320\261", "72", "r", "\342\200\215", "L", " ", " ,", "T", "30", ".", "\341\236\200dreEV", "\341\236\266", "D"},
     {"7", " l", "\302\275", "S\320\261", "7", "2", "r", "\342\200\215", "L", " ", " ,", "T", "3", "0", ".", "\341\236\200dreEV", "\341\236\266", "D"},
     {"7", " l", "\302\275", "S\320\261", "72", "r", "\342\200\215L", " ", " ,", "T", "30", ".\341\236\200dreEV", "\341\236\266D"},
     {"7", " l", "\302\275", "S\320\261", "7", "2", "r", "\342\200\215L", " ", " ,", "T", "3", "0", ".\341\236\200dreEV", "\341\236\266D"},
    },
    {"K(L.7l's'\331\2432\0120rv\303\237\342\200\250b",
     {"K", "(", "L", ".", "7", "l", "'s", "'", "\331\2432", "\012", "0", "rv\303\237", "\342\200\250", "b"},
     {"K", "(", "L", ".", "7", "l", "'s", "'", "\331\243", "2", "\012", "0", "rv\303\237", "\342\200\250", "b"},
     {"K", "(L", ".", "7", "l", "'s", "'", "\331\2432", "\012", "0", "rv\303\237", "\342\200\250b"},
     {"K", "(L", ".", "7", "l", "'s", "'", "\331\243", "2", "\012", "0", "rv\303\237", "\342\200\250b"},
    },
    {"(m8\302\275dlL\302\275! \012Z_c\011leb   ",
     {"(", "m", "8\302\275", "dlL", "\302\275", "!", " ", "\012", "Z", "_", "c", "\011", "leb", "   "},
     {"(", "m", "8", "\302\275", "dlL", "\302\275", "!", " ", "\012", "Z", "_", "c", "\011", "leb", "   "},
     {"(m", "8\302\275", "dlL", "\302\275", "!", " \012", "Z", "_c", "\011leb", "   "},
     {"(m", "8", "\302\275", "dlL", "\302\275", "!", " \012", "Z", "_c", "\011leb", "   "},
    },
    {"\303\237\314\201TZ.l\012'\015Y( 7\341\237\213Vc \303\251\320\261",
     {"\303\237", "\314\201", "TZ", ".", "l", "\012", "'", "\015", "Y", "(", " 7", "\341\237\213", "Vc", " \303\251\320\261"},
     {"\303\237", "\314\201", "TZ", ".", "l", "\012", "'", "\015", "Y", "(", " ", "7", "\341\237\213", "Vc", " \303\251\320\261"},
     {"\303\237", "\314\201TZ", ".l", "\012", "'\015", "Y", "(", " ", "7", "\341\237\213Vc", " \303\251\320\261"},
     {"\303\237", "\314\201TZ", ".l", "\012", "'\015", "Y", "(", " ", "7", "\341\237\213Vc", " \303\251\320\261"},
    },
    {"70\302\205\344\270\255s58 lm\331\243aX3e1\011S 1\331\243VaY\305\277_",
     {"70", "\302\205", "\344\270\255s", "58", " lm", "\331\243", "aX", "3", "e", "1", "\011", "S", " 1\331\243", "VaY\305\277", "_"},
     {"7", "0", "\302\205", "\344\270\255s", "5", "8", " lm", "\331\243", "aX", "3", "e", "1", "\011", "S", " ", "1", "\331\243", "VaY\305\277", "_"},
     {"70", "\302\205\344\270\255s", "58", " lm", "\331\243", "aX", "3", "e", "1", "\011S", " ", "1\331\243", "VaY\305\277", "_"},
     {"7", "0", "\302\205\344\270\255s", "5", "8", " lm", "\331\243", "aX", "3", "e", "1", "\011S", " ", "1", "\331\243", "VaY\305\277", "_"},
    },
    {"TL7'\331\243e\343\200\200D!\305\277l7\342\200\2154m\331\24330E\302\24090 L\342\200\250",
     {"TL", "7", "'", "\331\243", "e", "\343\200\200", "D", "!", "\305\277l", "7", "\342\200\215", "4", "m", "\331\24330", "E", "\302\240", "90", " L", "\342\200\250"},
     {"TL", "7", "'", "\331\243", "e", "\343\200\200", "D", "!", "\305\277l", "7", "\342\200\215", "4", "m", "\331\243", "3", "0", "E", "\302\240", "9", "0", " L", "\342\200\250"},
     {"TL", "7", "'", "\331\243", "e", "\343\200\200D", "!\305\277l", "7", "\342\200\215", "4", "m", "\331\24330", "E", "\302\240", "90", " L", "\342\200\250"},
     {"TL", "7", "'", "\331\243", "e", "\343\200\200D", "!\305\277l", "7", "\342\200\215", "4", "m", "\331\243", "3", "0", "E", "\302\240", "9", "0", " L", "\342\200\250"},
    },
    {"\305\277\341\236\266T88\302\2057\320\261_\302\205T8 \015'\303\2372mXY\331\243S\0122s 1 ",
     {"\305\277", "\341\236\266", "T", "88", "\302\205", "7", "\320\261", "_", "\302\205", "T", "8", " ", "\015", "'", "\303\237", "2", "mXY", "\331\243", "S", "\012", "2", "s", " 1", " "},
     {"\305\277", "\341\236\266", "T", "8", "8", "\302\205", "7", "\320\261", "_", "\302\205", "T", "8", " ", "\015", "'", "\303\237", "2", "mXY", "\331\243", "S", "\012", "2", "s", " ", "1", " "},
     {"\305\277", "\341\236\266T", "88", "\302\205", "7", "\320\261", "_", "\302\205T", "8", " \015", "'\303\237", "2", "mXY", "\331\243", "S", "\012", "2", "s", " ", "1", " "},
     {"\305\277", "\341\236\266T", "8", "8", "\302\205", "7", "\320\261", "_", "\302\205T", "8", " \015", "'\303\237", "2", "mXY", "\331\243", "S", "\012", "2", "s", " ", "1", " "},
    },
  };
  for (const RegexCase& c : cases) {
    EXPECT_EQ(split(c.text, PreTokenizerKind::Gpt2), c.gpt2) << c.text;
    EXPECT_EQ(split(c.text, PreTokenizerKind::Starcoder), c.starcoder) << c.text;
    EXPECT_EQ(split(c.text, PreTokenizerKind::Llama3), c.llama3) << c.text;
    EXPECT_EQ(split(c.text, PreTokenizerKind::Qwen2), c.qwen2) << c.text;
  }
}

// ---- Small vocabularies written with the project's GGUF writer ----

std::string gpt2_chars(const std::string& bytes) {
  std::string s;
  for (unsigned char c : bytes) utf8_append(s, gpt2_byte_to_codepoint(c));
  return s;
}

struct MiniBpe {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  std::string pre = "gpt-2";
};

MiniBpe mini_bpe(const std::vector<std::string>& merged, const std::vector<std::string>& merges) {
  MiniBpe m;
  for (int b = 0; b < 256; ++b) {
    m.tokens.push_back(gpt2_chars(std::string(1, static_cast<char>(b))));
    m.types.push_back(1);
  }
  for (const std::string& t : merged) {
    m.tokens.push_back(gpt2_chars(t));
    m.types.push_back(1);
  }
  for (const std::string& mg : merges) m.merges.push_back(mg);
  return m;
}

std::vector<uint8_t> write_bpe(const MiniBpe& m, const std::function<void(GGUFWriter&)>& tweak = {}) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", m.pre);
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings(m.tokens));
  w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(m.types));
  w.set("tokenizer.ggml.merges", GGUFValue::from_strings(m.merges));
  if (tweak) tweak(w);
  return w.serialize();
}

std::unique_ptr<Tokenizer> load(const std::vector<uint8_t>& img) {
  auto f = GGUFFile::from_memory(img.data(), img.size(), "mini.gguf");
  return Tokenizer::from_gguf(*f);  // the tokenizer keeps no reference to the file
}

TEST(Tokenizer, BpeMergesByRankLeftmostFirst) {
  // ids: 256 "ab", 257 "bc", 258 "abc", 259 "aa"
  MiniBpe m = mini_bpe({"ab", "bc", "abc", "aa"}, {"b c", "a b", "a bc", "a a"});
  auto tok = load(write_bpe(m));
  EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{258}));  // b c (rank 0), then a bc
  EXPECT_EQ(tok->encode("ab", false, false), (std::vector<int32_t>{256}));
  EXPECT_EQ(tok->encode("aaa", false, false), (std::vector<int32_t>{259, 'a'}));  // leftmost pair first
  EXPECT_EQ(tok->encode("aaaa", false, false), (std::vector<int32_t>{259, 259}));

  // With "a b" ranked first, "abc" ends as ab + c: there is no merge "ab c".
  MiniBpe m2 = mini_bpe({"ab", "bc", "abc"}, {"a b", "b c", "a bc"});
  auto tok2 = load(write_bpe(m2));
  EXPECT_EQ(tok2->encode("abc", false, false), (std::vector<int32_t>{256, 'c'}));
  // Token ids of single bytes are the bytes here; " ab" is one word, "Ġ" + "ab" (no merge "Ġ a").
  EXPECT_EQ(tok2->encode("ab ab", false, false), (std::vector<int32_t>{256, ' ', 256}));
}

TEST(Tokenizer, Llama3WholeWordsSkipMerges) {
  // "abc" is a token but no merge path builds it; Llama-3 (ignore_merges) takes a whole-word match.
  MiniBpe m = mini_bpe({"abc", "ab"}, {"a b"});
  m.pre = "llama-bpe";
  auto l3 = load(write_bpe(m));
  EXPECT_EQ(l3->encode("abc", false, false), (std::vector<int32_t>{256}));
  EXPECT_EQ(l3->encode("abcd", false, false), (std::vector<int32_t>{257, 'c', 'd'}));
  EXPECT_EQ(l3->encode("1234", false, false), (std::vector<int32_t>{'1', '2', '3', '4'}));  // "123" and "4": no merges
  EXPECT_TRUE(l3->add_bos_default());
  m.pre = "lfm2";  // LFM2's pre-tokenizer is Llama-3's, merges skipped for whole words alike (llama.cpp)
  auto lfm2 = load(write_bpe(m));
  EXPECT_EQ(lfm2->encode("abc", false, false), (std::vector<int32_t>{256}));
  EXPECT_EQ(lfm2->encode("1234", false, false), l3->encode("1234", false, false));
  EXPECT_TRUE(lfm2->add_bos_default());
  m.pre = "gpt-2";
  auto g2 = load(write_bpe(m));
  EXPECT_EQ(g2->encode("abc", false, false), (std::vector<int32_t>{257, 'c'}));
  EXPECT_FALSE(g2->add_bos_default());
  m.pre = "qwen2";
  EXPECT_EQ(load(write_bpe(m))->encode("abc", false, false), (std::vector<int32_t>{257, 'c'}));
}

TEST(Tokenizer, SpecialTokensLongestFirstAndUserDefined) {
  MiniBpe m = mini_bpe({}, {});
  m.tokens.push_back("<|x|>");  // 256 control
  m.types.push_back(3);
  m.tokens.push_back("<|x|>y");  // 257 control, longer
  m.types.push_back(3);
  m.tokens.push_back("<tool>");  // 258 user-defined
  m.types.push_back(4);
  m.tokens.push_back("<|im_end|>");  // 259 control, end of turn by name
  m.types.push_back(3);
  auto tok = load(write_bpe(m));
  EXPECT_EQ(tok->encode("<|x|>y<|x|>", false, true), (std::vector<int32_t>{257, 256}));
  EXPECT_EQ(tok->encode("a<tool>b", false, false), (std::vector<int32_t>{'a', 258, 'b'}));
  EXPECT_EQ(tok->encode("<|x|>", false, false).size(), 5u);
  EXPECT_TRUE(tok->is_end_of_generation(259));
  EXPECT_FALSE(tok->is_end_of_generation(256));
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->encode("a", /*add_bos=*/true, false), (std::vector<int32_t>{'a'}));  // no BOS to add
  EXPECT_EQ(tok->decode({'a', 258, 259}, true), "a<tool>");  // user-defined text is kept
}

std::vector<uint8_t> write_spm(const std::vector<std::string>& tokens, const std::vector<float>& scores,
                               const std::vector<int32_t>& types,
                               const std::function<void(GGUFWriter&)>& tweak = {}) {
  GGUFWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings(tokens));
  w.set("tokenizer.ggml.scores", GGUFValue::from_f32s(scores));
  w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(types));
  if (tweak) tweak(w);
  return w.serialize();
}

TEST(Tokenizer, SentencePieceMergesByScore) {
  const std::string sp = kSpace;
  // 0 <unk> 1 <s> 2 </s> 3 ▁ 4 a 5 b 6 c 7 ▁a 8 ab 9 bc 10 ▁ab 11 abc
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>", sp, "a", "b", "c", sp + "a", "ab", "bc", sp + "ab", "abc"};
  std::vector<float> scores = {0, 0, 0, -1, -1, -1, -1, -3, -2, -0.5f, -4, -5};
  std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  auto tok = load(write_spm(toks, scores, types));
  // "▁abc": pairs ▁a(-3) ab(-2) bc(-0.5) → bc first, then ▁a(-3) vs a+bc=abc(-5) → ▁a, then ▁a+bc not a token.
  EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{7, 9}));
  EXPECT_EQ(tok->encode("ab", true, false), (std::vector<int32_t>{1, 10}));  // ab(-2) then ▁+ab
  EXPECT_EQ(tok->decode({1, 10}, true), "ab");
  EXPECT_EQ(tok->decode({1, 10}), "<s> ab");  // the leading space is only dropped from the first piece
  // No byte tokens: an unknown character becomes <unk>.
  EXPECT_EQ(tok->encode("a\xC3\xA9", false, false), (std::vector<int32_t>{7, 0}));
  EXPECT_EQ(tok->decode({7, 0}, true), "a");

  auto no_prefix = load(write_spm(toks, scores, types, [](GGUFWriter& w) {
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
  }));
  EXPECT_EQ(no_prefix->encode("abc", false, false), (std::vector<int32_t>{11}));  // bc, then a+bc
  EXPECT_EQ(no_prefix->encode("ab c", false, false), (std::vector<int32_t>{8, 3, 6}));
  EXPECT_FALSE(no_prefix->add_bos_default());
  EXPECT_EQ(no_prefix->decode({3, 4}), " a");

  // Whitespace after special tokens: kept in general, dropped for models named Phi-3.
  toks.push_back("<|user|>");  // 12
  scores.push_back(0);
  types.push_back(3);
  auto named = [&](const char* name) {
    return load(write_spm(toks, scores, types, [&](GGUFWriter& w) { w.set_string("general.name", name); }));
  };
  EXPECT_EQ(named("Tiny")->encode("<|user|> a", false, true), (std::vector<int32_t>{12, 3, 7}));
  EXPECT_EQ(named("Phi3 mini")->encode("<|user|> a", false, true), (std::vector<int32_t>{12, 7}));
  EXPECT_EQ(named("Phi3 mini")->encode("<s> a", false, true), (std::vector<int32_t>{1, 3, 7}));  // <s> keeps it
}

// A Gemma-style SentencePiece vocabulary (tokenizer.ggml.model "llama", no added space prefix,
// <bos>/<eos> and the turn markers as control tokens, "\n" a token of its own): the rendered gemma
// chat template encodes marker by marker, with no space inserted after a marker (llama.cpp adds
// one only when add_space_prefix is set), and <end_of_turn> ends generation.
TEST(Tokenizer, GemmaStyleVocabularyWithChatTemplate) {
  const std::string sp = kSpace;
  // 0 <pad> 1 <eos> 2 <bos> 3 <unk> 4 <start_of_turn> 5 <end_of_turn> 6 \n 7 ▁ 8 u 9 s 10 e 11 r
  // 12 user 13 model 14 H 15 i 16 ▁i 17 m 18 o 19 d 20 l 21 us 22 use 23 mo 24 mod 25 mode
  std::vector<std::string> toks = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n", sp,
                                   "u", "s", "e", "r", "user", "model", "H", "i", sp + "i", "m", "o", "d", "l",
                                   "us", "use", "mo", "mod", "mode"};
  std::vector<float> scores(toks.size(), -1.0f);
  scores[12] = -2, scores[13] = -2, scores[16] = -1.5f, scores[21] = -3, scores[22] = -2.5f;
  scores[23] = -3, scores[24] = -2.8f, scores[25] = -2.6f;
  std::vector<int32_t> types(toks.size(), 1);
  types[0] = 3, types[1] = 3, types[2] = 3, types[3] = 2, types[4] = 3, types[5] = 3;
  auto tok = load(write_spm(toks, scores, types, [](GGUFWriter& w) {
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    w.set_u32("tokenizer.ggml.bos_token_id", 2);
    w.set_u32("tokenizer.ggml.eos_token_id", 1);
    w.set_string("general.architecture", "gemma3");
  }));
  const std::string text = apply_chat_template(ChatTemplate::Gemma, {{"user", "Hi i"}});
  EXPECT_EQ(text, "<bos><start_of_turn>user\nHi i<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(tok->encode(text, false, true),
            (std::vector<int32_t>{2, 4, 12, 6, 14, 15, 16, 5, 6, 4, 13, 6}));
  EXPECT_TRUE(tok->is_end_of_generation(5));
  EXPECT_TRUE(tok->is_end_of_generation(1));
  EXPECT_EQ(tok->decode({14, 15, 16}), "Hi i");
}

// ---- Randomized: the heap-based merge loops against naive O(n^2) references ----

// Naive byte-level BPE on one word: repeatedly merge the adjacent pair of lowest rank (leftmost).
std::vector<std::string> naive_bpe(const std::string& word, const std::map<std::pair<std::string, std::string>, int>& rank) {
  std::vector<std::string> sym;
  for (unsigned char c : word) sym.push_back(gpt2_chars(std::string(1, static_cast<char>(c))));
  while (true) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const auto it = rank.find({sym[i], sym[i + 1]});
      if (it != rank.end() && (best < 0 || it->second < best_rank)) {
        best = static_cast<int>(i);
        best_rank = it->second;
      }
    }
    if (best < 0) return sym;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
}

TEST(Tokenizer, RandomBpeMatchesNaiveReference) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    MiniBpe m = mini_bpe({}, {});
    std::map<std::pair<std::string, std::string>, int> rank;
    std::vector<std::string> pool;  // token texts (GPT-2 characters) over a small alphabet
    for (char c : std::string("ab c\n")) pool.push_back(gpt2_chars(std::string(1, c)));
    for (int k = 0; k < 60; ++k) {
      const std::string l = pool[rng() % pool.size()], r = pool[rng() % pool.size()];
      if (rank.count({l, r})) continue;
      rank[{l, r}] = static_cast<int>(m.merges.size());
      m.merges.push_back(l + " " + r);
      if (std::find(m.tokens.begin(), m.tokens.end(), l + r) == m.tokens.end()) {
        m.tokens.push_back(l + r);
        m.types.push_back(1);
        pool.push_back(l + r);
      }
    }
    auto tok = load(write_bpe(m));
    for (int t = 0; t < 30; ++t) {
      std::string text;
      const int len = rng() % 40;
      for (int i = 0; i < len; ++i) text += rng() % 10 ? "ab c\n"[rng() % 5] : static_cast<char>(rng() % 256);
      std::vector<int32_t> want;
      size_t pos = 0;
      for (size_t wl : pretokenize(text, PreTokenizerKind::Gpt2)) {
        for (const std::string& s : naive_bpe(text.substr(pos, wl), rank)) want.push_back(tok->find_token(s));
        pos += wl;
      }
      const std::vector<int32_t> got = tok->encode(text, false, false);
      ASSERT_EQ(got, want) << "round " << round << " text '" << text << "'";
      ASSERT_EQ(tok->decode(got), text);
    }
  }
}

// Naive SentencePiece-style BPE: merge the adjacent pair whose concatenation is the vocabulary entry
// of highest score (leftmost among equals); leftovers become byte tokens.
std::vector<int32_t> naive_spm(const Tokenizer& tok, const std::string& text) {
  std::string s = kSpace;
  for (char c : text) s += c == ' ' ? std::string(kSpace) : std::string(1, c);
  std::vector<std::string> sym;
  for (size_t i = 0; i < s.size();) {
    const size_t len = std::min(utf8_lead_len(static_cast<unsigned char>(s[i])), s.size() - i);
    sym.push_back(s.substr(i, len));
    i += len;
  }
  while (true) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const int32_t id = tok.find_token(sym[i] + sym[i + 1]);
      if (id >= 0 && (best < 0 || tok.token_score(id) > best_score)) {
        best = static_cast<int>(i);
        best_score = tok.token_score(id);
      }
    }
    if (best < 0) break;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
  std::vector<int32_t> ids;
  for (const std::string& x : sym) {
    const int32_t id = tok.find_token(x);
    if (id >= 0) {
      ids.push_back(id);
      continue;
    }
    for (unsigned char c : x) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", c);
      ids.push_back(tok.find_token(buf));
    }
  }
  return ids;
}

TEST(Tokenizer, RandomSentencePieceMatchesNaiveReference) {
  std::mt19937 rng(11);
  const std::vector<std::string> alphabet = {"a", "b", kSpace, "\xC3\xA9"};
  for (int round = 0; round < 20; ++round) {
    // Real vocabularies always hold "▁" (else spaces would decode as the bytes of "▁").
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>", kSpace};
    std::vector<float> scores = {0, 0, 0, -1};
    std::vector<int32_t> types = {2, 3, 3, 1};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      toks.push_back(buf);
      scores.push_back(0);
      types.push_back(6);
    }
    for (int k = 0; k < 40; ++k) {
      std::string t;
      const int len = 1 + rng() % 4;
      for (int i = 0; i < len; ++i) t += alphabet[rng() % alphabet.size()];
      if (std::find(toks.begin(), toks.end(), t) != toks.end()) continue;
      toks.push_back(t);
      scores.push_back(-static_cast<float>(rng() % 8));  // many equal scores: ties must go leftmost
      types.push_back(1);
    }
    auto tok = load(write_spm(toks, scores, types));
    for (int t = 0; t < 30; ++t) {
      std::string text;
      const int len = rng() % 30;
      for (int i = 0; i < len; ++i) text += rng() % 8 ? std::string(1, "ab  "[rng() % 4]) : "\xC3\xA9";
      if (rng() % 5 == 0) text += static_cast<char>(0x80 + rng() % 128);  // invalid UTF-8
      const std::vector<int32_t> got = tok->encode(text, false, false);
      ASSERT_EQ(got, text.empty() ? std::vector<int32_t>{} : naive_spm(*tok, text)) << "text '" << text << "'";
      ASSERT_EQ(tok->decode(got), text);
    }
  }
}

// ---- Bad metadata: always edgevlm::Error, naming what is wrong ----

void expect_error(const std::vector<uint8_t>& img, const std::string& needle) {
  try {
    load(img);
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadMetadataIsAnError) {
  const MiniBpe good = mini_bpe({"ab"}, {"a b"});
  EXPECT_NO_THROW(load(write_bpe(good)));

  GGUFWriter none;
  none.set_string("general.architecture", "llama");
  expect_error(none.serialize(), "tokenizer.ggml.model");

  GGUFWriter no_tokens;
  no_tokens.set_string("tokenizer.ggml.model", "gpt2");
  expect_error(no_tokens.serialize(), "tokenizer.ggml.tokens");

  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set("tokenizer.ggml.tokens", GGUFValue::from_i32s({1, 2})); }),
               "tokenizer.ggml.tokens");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set("tokenizer.ggml.tokens", GGUFValue::from_strings({})); }),
               "tokenizer.ggml.tokens");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set_string("tokenizer.ggml.model", "t5"); }), "t5");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set_string("tokenizer.ggml.pre", "mystery"); }), "mystery");

  MiniBpe unknown_part = good;
  unknown_part.merges.push_back("a zz");
  expect_error(write_bpe(unknown_part), "merges[1]");
  MiniBpe unknown_result = good;
  unknown_result.merges.push_back("b c");  // "bc" is not a token
  expect_error(write_bpe(unknown_result), "'bc'");
  MiniBpe no_space = good;
  no_space.merges.push_back("abc");
  expect_error(write_bpe(no_space), "merges[1]");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set("tokenizer.ggml.merges", GGUFValue::from_i32s({})); }),
               "tokenizer.ggml.merges");

  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 257); }),
               "tokenizer.ggml.bos_token_id");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set_i32("tokenizer.ggml.eos_token_id", -7); }),
               "tokenizer.ggml.eos_token_id");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set_string("tokenizer.ggml.eos_token_id", "2"); }),
               "tokenizer.ggml.eos_token_id");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s({1})); }),
               "tokenizer.ggml.token_type");
  expect_error(write_bpe(good, [&](GGUFWriter& w) {
                 std::vector<int32_t> t(good.tokens.size(), 1);
                 t[5] = 9;
                 w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(t));
               }),
               "token_type[5]");
  expect_error(write_bpe(good, [](GGUFWriter& w) { w.set("tokenizer.ggml.scores", GGUFValue::from_f32s({1, 2})); }),
               "tokenizer.ggml.scores");
  // -1 means "no such token", as some converters write it.
  auto t = load(write_bpe(good, [](GGUFWriter& w) { w.set_i32("tokenizer.ggml.padding_token_id", -1); }));
  EXPECT_EQ(t->pad_id(), -1);

  GGUFWriter spm_no_tokens;
  spm_no_tokens.set_string("tokenizer.ggml.model", "llama");
  spm_no_tokens.set("tokenizer.ggml.scores", GGUFValue::from_f32s({0}));
  expect_error(spm_no_tokens.serialize(), "tokenizer.ggml.tokens");
}

// ---- Speed: encoding 10k words must take milliseconds, with no quadratic corner ----

std::string ten_thousand_words() {
  static const char* syl[] = {"ka", "lo", "mi", "ne", "ro", "tu", "sha", "ven", "qu", "ix", "zo", "é", "ß", "中"};
  uint64_t x = 12345;
  std::string s;
  for (int w = 0; w < 10000; ++w) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int n = 1 + (x >> 60) % 4;
    for (int k = 0; k < n; ++k) s += syl[(x >> (8 * k + 8)) % 14];
    s += (x >> 40) % 10 == 0 ? ", " : (x >> 40) % 17 == 0 ? "\n" : " ";
    if ((x >> 20) % 50 == 0) s += std::to_string(x % 100000) + " ";
  }
  return s;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

TEST(Tokenizer, EncodesTenThousandWordsQuickly) {
  const std::string text = ten_thousand_words();
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-starcoder.gguf"}) {
    std::unique_ptr<GGUFFile> f;
    auto tok = open_shared(name, f);
    if (!tok) GTEST_SKIP() << name << " not found";
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tok->encode(text, false, true);
    const double enc_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    const std::string back = tok->decode(ids);
    const double dec_ms = ms_since(t0);
    EXPECT_EQ(back, text) << name;
    std::printf("%s: %zu bytes -> %zu tokens, encode %.1f ms, decode %.1f ms\n", name, text.size(), ids.size(),
                enc_ms, dec_ms);
    EXPECT_LT(enc_ms, 3000) << name;  // milliseconds in Release; generous for sanitizer builds
  }
}

TEST(Tokenizer, LongRunsAreNotQuadratic) {
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf"}) {
    std::unique_ptr<GGUFFile> f;
    auto tok = open_shared(name, f);
    if (!tok) GTEST_SKIP() << name << " not found";
    for (const std::string& run : {std::string(100000, 'a'), std::string(100000, ' '),
                                   std::string(30000, 'x') + std::string(30000, '\n') + "\xE4\xB8\xAD"}) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<int32_t> ids = tok->encode(run, false, false);
      const double ms = ms_since(t0);
      EXPECT_EQ(tok->decode(ids), run) << name;
      EXPECT_LT(ms, 3000) << name << " run of " << run.size();
    }
  }
}

}  // namespace
}  // namespace edgevlm
