// The bluelm-v-3b generator at a tiny size (same code path as the 2.7B files): both files load in
// the engine with the intended types, the tokenizer is a valid byte-level BPE of exactly n_vocab
// tokens whose synthetic merges are reachable, and the streamed writer's output is deterministic.
#include "model/bluelm_shape.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

BlueLmShape tiny() {
  BlueLmShape s;
  s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 96, s.n_ctx = 128;
  s.n_vocab = 50257 + 6 + 101;  // GPT-2's vocabulary, 101 synthetic merges, 6 control tokens
  s.image_size = 28, s.patch_size = 14, s.vit_embd = 64, s.vit_layers = 2, s.vit_heads = 4, s.vit_ff = 80;
  s.proj_hidden = 64;
  return s;
}

std::vector<char> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(BlueLmShape, TinyLlmLoadsWithPaperPrecisionsAndTokenizer) {
  const BlueLmShape s = tiny();
  const std::string p = ::testing::TempDir() + "bluelm_tiny.gguf";
  write_bluelm_llm(p, s);
  auto f = GGUFFile::open(p);
  auto m = LlmModel::load(*f);
  const LlmConfig& c = m->config();
  EXPECT_EQ(c.n_vocab, s.n_vocab);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(f->tensor("token_embd.weight").type, GGMLType::Q8_0);
  EXPECT_EQ(f->tensor("output.weight").type, GGMLType::Q8_0);
  EXPECT_EQ(f->tensor("blk.1.ffn_down.weight").type, GGMLType::Q4_0);
  EXPECT_EQ(f->tensor("blk.0.attn_q.weight").type, GGMLType::Q4_0);
  EXPECT_EQ(f->tensor("blk.0.attn_norm.weight").type, GGMLType::F32);
  EXPECT_EQ(f->get_int("general.file_type"), 2);

  auto tok = Tokenizer::from_gguf(*f);
  EXPECT_EQ(tok->n_vocab(), s.n_vocab);
  const int32_t im_end = tok->find_token("<|im_end|>");
  EXPECT_EQ(im_end, s.n_vocab - 5);
  EXPECT_EQ(tok->eos_id(), im_end);
  EXPECT_TRUE(tok->is_special(tok->find_token("<image>")));
  EXPECT_TRUE(tok->is_end_of_generation(im_end));
  // The first synthetic token (index 50257) is a word + suffix merge: BPE must reach it.
  const std::vector<std::string> toks = f->get_strings("tokenizer.ggml.tokens");
  const std::vector<std::string> merges = f->get_strings("tokenizer.ggml.merges");
  ASSERT_EQ(toks.size(), size_t(s.n_vocab));
  EXPECT_EQ(merges.size(), size_t(50000 + 101));
  const std::string& syn = toks[50257];
  const std::string& mg = merges[50000];
  const size_t sp = mg.find(' ');
  ASSERT_NE(sp, std::string::npos);
  EXPECT_EQ(mg.substr(0, sp) + mg.substr(sp + 1), syn);
  // The token's text (Ġ is GPT-2's byte mapping of a space) encodes to that one token.
  std::string text = syn;
  if (text.rfind("\xC4\xA0", 0) == 0) text = " " + text.substr(2);
  EXPECT_EQ(tok->encode(text, false, false), std::vector<int32_t>{50257}) << text;
  // Deterministic: a second write gives the same bytes.
  const std::string p2 = ::testing::TempDir() + "bluelm_tiny2.gguf";
  write_bluelm_llm(p2, s);
  EXPECT_EQ(slurp(p), slurp(p2));
  std::remove(p.c_str());
  std::remove(p2.c_str());
}

TEST(BlueLmShape, TinyMmprojLoads) {
  const BlueLmShape s = tiny();
  const std::string p = ::testing::TempDir() + "bluelm_tiny_mmproj.gguf";
  write_bluelm_mmproj(p, s);
  auto f = GGUFFile::open(p);
  auto mm = MmprojModel::load(*f);
  const VisionConfig& vc = mm->config();
  EXPECT_EQ(vc.image_size, 28);
  EXPECT_EQ(vc.projection_dim, s.n_embd);
  EXPECT_EQ(vc.projector, ProjectorType::Lfm2);
  EXPECT_EQ(vc.max_tiles, 16);
  EXPECT_EQ(f->tensor("v.blk.0.attn_q.weight").type, GGMLType::Q8_0);
  EXPECT_EQ(f->tensor("v.blk.0.ffn_up.weight").type, GGMLType::Q8_0);
  EXPECT_EQ(f->tensor("v.blk.0.ffn_down.weight").type, GGMLType::F16);  // rows of 80: not 32-blocks
  EXPECT_EQ(f->tensor("v.patch_embd.weight").type, GGMLType::F16);      // rows of 14
  EXPECT_EQ(f->tensor("v.position_embd.weight").type, GGMLType::F32);
  EXPECT_EQ(f->tensor("mm.1.weight").type, GGMLType::Q8_0);
  std::remove(p.c_str());
}

TEST(BlueLmShape, VocabularyTooSmallIsAnError) {
  BlueLmShape s = tiny();
  s.n_vocab = 1000;
  try {
    write_bluelm_llm(::testing::TempDir() + "bluelm_bad.gguf", s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgevlm
