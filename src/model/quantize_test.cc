// quantize_gguf on both files of a pair: per-tensor types of each scheme, bit-exact block data
// (the same bytes quantize_row gives the source rows), metadata copied, the result loading and
// running in the engine, and the errors a user can cause.
#include "model/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/random_model.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

std::string tmp(const std::string& name) { return ::testing::TempDir() + "quantize_test_" + name; }

std::string make_llm(const std::string& name, GGMLType wt = GGMLType::F32) {
  RandomLlamaSpec s;
  s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 128, s.n_ctx = 64, s.n_vocab = 96;
  s.weight_type = wt;
  s.seed = 3;
  const std::string p = tmp(name);
  write_random_llama(p, s);
  return p;
}

std::string make_mmproj(const std::string& name) {
  RandomMmprojSpec s;  // image 32, patch 8 (patch rows of 8: not quantizable), width 32, projection 48
  s.n_embd = 64, s.n_ff = 128, s.projection_dim = 96;
  const std::string p = tmp(name);
  write_random_mmproj(p, s);
  return p;
}

std::vector<uint8_t> requantized(const GGUFTensorInfo& t, GGMLType to) {
  const int64_t n = t.ne[0];
  std::vector<float> row(size_t(n), 0.0f);
  std::vector<uint8_t> out(row_bytes(to, n) * size_t(t.rows()));
  for (int64_t r = 0; r < t.rows(); ++r) {
    dequantize_row(t.type, t.data + size_t(r) * row_bytes(t.type, n), row.data(), n);
    quantize_row(to, row.data(), out.data() + size_t(r) * row_bytes(to, n), n);
  }
  return out;
}

void expect_metadata_copied(const GGUFFile& a, const GGUFFile& b) {
  for (const auto& [key, v] : a.metadata()) {
    if (key == "general.file_type" || key == "general.quantization_version") continue;
    const GGUFValue* o = b.find(key);
    ASSERT_NE(o, nullptr) << key;
    EXPECT_EQ(o->type, v.type) << key;
    if (v.type == GGUFType::STRING) {
      EXPECT_EQ(o->s, v.s) << key;
    }
    if (v.is_integer()) {
      EXPECT_EQ(o->as_int(), v.as_int()) << key;
    }
    if (v.type == GGUFType::FLOAT32) {
      EXPECT_EQ(o->f, v.f) << key;
    }
    if (v.type == GGUFType::ARRAY) {
      EXPECT_EQ(o->arr->size(), v.arr->size()) << key;
    }
  }
}

TEST(Quantize, BlueLmSchemeOnLlm) {
  const std::string in = make_llm("llm_f32.gguf"), out = tmp("llm_bluelm.gguf");
  int calls = 0;
  QuantizeReport rep = quantize_gguf(in, out, QuantScheme::BlueLM, [&](const QuantizeProgress& p) {
    EXPECT_EQ(p.index, size_t(calls));
    EXPECT_LE(p.bytes_done, p.bytes_total);
    ++calls;
  });
  EXPECT_EQ(rep.kind, ModelFileKind::Llm);
  auto a = GGUFFile::open(in), b = GGUFFile::open(out);
  EXPECT_EQ(calls, int(a->tensors().size()));
  EXPECT_EQ(rep.out_bytes, b->file_size());
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  expect_metadata_copied(*a, *b);
  EXPECT_EQ(b->get_int("general.file_type"), 2);  // mostly Q4_0
  EXPECT_EQ(b->get_int("general.quantization_version"), 2);
  for (const GGUFTensorInfo& t : a->tensors()) {
    SCOPED_TRACE(t.name);
    const GGUFTensorInfo& q = b->tensor(t.name);
    EXPECT_EQ(q.ne, t.ne);
    GGMLType want = GGMLType::Q4_0;
    if (t.name == "token_embd.weight" || t.name == "output.weight") want = GGMLType::Q8_0;
    if (t.ne.size() == 1) want = GGMLType::F32;
    EXPECT_EQ(q.type, want);
    const std::vector<uint8_t> exp = requantized(t, want);
    ASSERT_EQ(q.nbytes, exp.size());
    EXPECT_EQ(std::memcmp(q.data, exp.data(), exp.size()), 0);
  }
  // It runs, and its logits stay close to the F32 file's.
  auto ma = LlmModel::load(*a), mb = LlmModel::load(*b);
  ThreadPool pool(2);
  const int n = 8;
  std::vector<int32_t> toks = {1, 5, 9, 2, 40, 77, 3, 12};
  std::vector<float> ea(size_t(n) * 64), eb(ea.size()), la(96), lb(96);
  ma->embed_tokens(toks.data(), n, ea.data());
  mb->embed_tokens(toks.data(), n, eb.data());
  KvCache ca(ma->config(), 16), cb(mb->config(), 16, KvType::Q8);
  llm_forward(*ma, ca, ea.data(), n, la.data(), false, pool);
  llm_forward(*mb, cb, eb.data(), n, lb.data(), false, pool);
  float err = 0, scale = 0;
  for (int i = 0; i < 96; ++i) err = std::max(err, std::fabs(la[size_t(i)] - lb[size_t(i)])),
                              scale = std::max(scale, std::fabs(la[size_t(i)]));
  EXPECT_LT(err, 0.25f * scale);  // 4-bit weights: a coarse bound, but catches a wrong layout
  std::remove(in.c_str());
  std::remove(out.c_str());
}

TEST(Quantize, BlueLmSchemeOnMmproj) {
  const std::string in = make_mmproj("mm_f32.gguf"), out = tmp("mm_bluelm.gguf");
  QuantizeReport rep = quantize_gguf(in, out, QuantScheme::BlueLM);
  EXPECT_EQ(rep.kind, ModelFileKind::Mmproj);
  auto a = GGUFFile::open(in), b = GGUFFile::open(out);
  expect_metadata_copied(*a, *b);
  EXPECT_EQ(b->get_int("general.file_type"), 7);
  int q8 = 0;
  for (const GGUFTensorInfo& t : a->tensors()) {
    SCOPED_TRACE(t.name);
    const GGUFTensorInfo& q = b->tensor(t.name);
    const bool vec = t.name.find(".bias") != std::string::npos || t.name.find("position_embd") != std::string::npos ||
                     t.name.find("ln") != std::string::npos || t.name.find("norm") != std::string::npos;
    if (vec) {
      EXPECT_EQ(q.type, GGMLType::F32);
    } else if (t.ne[0] % 32 != 0) {
      EXPECT_EQ(q.type, t.type);  // the 8×8 patch embedding stays as it was
    } else {
      EXPECT_EQ(q.type, GGMLType::Q8_0);
      ++q8;
      const std::vector<uint8_t> exp = requantized(t, GGMLType::Q8_0);
      ASSERT_EQ(q.nbytes, exp.size());
      EXPECT_EQ(std::memcmp(q.data, exp.data(), exp.size()), 0);
    }
  }
  EXPECT_GE(q8, 2 * 6 + 2);  // 6 matrices per block, 2 blocks, mm.1 and mm.2
  EXPECT_NO_THROW(MmprojModel::load(*b));
  std::remove(in.c_str());
  std::remove(out.c_str());
}

TEST(Quantize, UniformSchemesAndCopies) {
  const std::string in = make_llm("llm_q8.gguf", GGMLType::Q8_0);
  for (QuantScheme s : {QuantScheme::Q8_0, QuantScheme::Q4_0, QuantScheme::F16, QuantScheme::F32}) {
    SCOPED_TRACE(quant_scheme_name(s));
    const std::string out = tmp(std::string("u_") + quant_scheme_name(s) + ".gguf");
    quantize_gguf(in, out, s, {}, 3, /*allow_requantize=*/true);  // threads: the bytes must not depend on them
    auto a = GGUFFile::open(in), b = GGUFFile::open(out);
    EXPECT_EQ(b->get_int("general.file_type"), int64_t(quant_file_type(s, ModelFileKind::Llm)));
    for (const GGUFTensorInfo& t : a->tensors()) {
      const GGUFTensorInfo& q = b->tensor(t.name);
      const GGMLType want = t.ne.size() == 1 || s == QuantScheme::F32 ? GGMLType::F32
                            : s == QuantScheme::F16                  ? GGMLType::F16
                            : s == QuantScheme::Q4_0                 ? GGMLType::Q4_0
                                                                     : GGMLType::Q8_0;
      EXPECT_EQ(q.type, want) << t.name;
      if (want == t.type) {  // same type: the bytes are copied, not requantized
        ASSERT_EQ(q.nbytes, t.nbytes);
        EXPECT_EQ(std::memcmp(q.data, t.data, t.nbytes), 0) << t.name;
      }
    }
    EXPECT_NO_THROW(LlmModel::load(*b));
    std::remove(out.c_str());
  }
  std::remove(in.c_str());
}

TEST(Quantize, RowsNotMultipleOf32StayFloat) {
  GGUFTensorInfo t;
  t.name = "blk.0.attn_q.weight";
  t.ne = {48, 64};
  t.type = GGMLType::F16;
  EXPECT_EQ(quant_target_type(QuantScheme::BlueLM, ModelFileKind::Llm, t), GGMLType::F16);
  t.type = GGMLType::F32;
  EXPECT_EQ(quant_target_type(QuantScheme::Q4_0, ModelFileKind::Llm, t), GGMLType::F32);
  t.type = GGMLType::BF16;
  EXPECT_EQ(quant_target_type(QuantScheme::Q8_0, ModelFileKind::Mmproj, t), GGMLType::F16);
  t.ne = {64, 64};
  EXPECT_EQ(quant_target_type(QuantScheme::BlueLM, ModelFileKind::Llm, t), GGMLType::Q4_0);
  t.name = "v.position_embd.weight";
  EXPECT_EQ(quant_target_type(QuantScheme::BlueLM, ModelFileKind::Mmproj, t), GGMLType::F32);
  t.name = "blk.3.ffn_norm.weight";
  t.ne = {64};
  EXPECT_EQ(quant_target_type(QuantScheme::Q8_0, ModelFileKind::Llm, t), GGMLType::F32);
}

// llama-quantize's per-tensor choices (llama_tensor_get_type, dense decoder, no imatrix).
TEST(Quantize, KQuantSchemeTypes) {
  GGUFTensorInfo t;
  t.type = GGMLType::F16;
  auto type_of = [&](QuantScheme s, const std::string& name, std::vector<int64_t> ne, bool tied = false) {
    t.name = name;
    t.ne = std::move(ne);
    return quant_target_type(s, ModelFileKind::Llm, t, {/*n_layer=*/16, tied, /*n_gqa=*/2});
  };
  const QuantScheme m4 = QuantScheme::Q4_K_M, m5 = QuantScheme::Q5_K_M, k6 = QuantScheme::Q6_K;
  EXPECT_EQ(type_of(m4, "blk.3.attn_q.weight", {512, 512}), GGMLType::Q4_K);
  EXPECT_EQ(type_of(m5, "blk.3.attn_q.weight", {512, 512}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(k6, "blk.3.attn_q.weight", {512, 512}), GGMLType::Q6_K);
  EXPECT_EQ(type_of(m4, "output.weight", {512, 1000}), GGMLType::Q6_K);
  EXPECT_EQ(type_of(m4, "token_embd.weight", {512, 1000}), GGMLType::Q4_K);
  EXPECT_EQ(type_of(m4, "token_embd.weight", {512, 1000}, /*tied=*/true), GGMLType::Q6_K);
  EXPECT_EQ(type_of(m4, "output.weight", {96, 1000}), GGMLType::Q8_0);  // rows not a multiple of 256
  // use_more_bits(i, 16): layers 0-1 and 14-15, and 4, 7, 10, 13 between.
  for (int layer = 0; layer < 16; ++layer) {
    const bool more = layer < 2 || layer >= 14 || (layer - 2) % 3 == 2;
    const std::string b = "blk." + std::to_string(layer) + ".";
    EXPECT_EQ(type_of(m4, b + "attn_v.weight", {512, 128}), more ? GGMLType::Q6_K : GGMLType::Q4_K) << layer;
    EXPECT_EQ(type_of(m5, b + "ffn_down.weight", {1024, 512}), more ? GGMLType::Q6_K : GGMLType::Q5_K) << layer;
    EXPECT_EQ(type_of(m4, b + "ffn_up.weight", {512, 1024}), GGMLType::Q4_K) << layer;
    EXPECT_EQ(type_of(k6, b + "attn_v.weight", {512, 128}), GGMLType::Q6_K) << layer;
  }
  EXPECT_EQ(type_of(m4, "blk.5.attn_qkv.weight", {512, 768}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(m5, "blk.5.attn_qkv.weight", {512, 768}), GGMLType::Q6_K);
  // Fallbacks for rows that are not a multiple of 256, then of 32.
  EXPECT_EQ(type_of(m4, "blk.5.attn_q.weight", {96, 96}), GGMLType::Q5_0);
  EXPECT_EQ(type_of(m5, "blk.5.attn_q.weight", {96, 96}), GGMLType::Q5_1);
  EXPECT_EQ(type_of(k6, "blk.5.attn_q.weight", {96, 96}), GGMLType::Q8_0);
  EXPECT_EQ(type_of(m4, "blk.0.attn_v.weight", {96, 96}), GGMLType::Q8_0);  // Q6_K's fallback
  EXPECT_EQ(type_of(m4, "blk.5.attn_q.weight", {48, 96}), GGMLType::F16);
  // What llama-quantize leaves alone keeps its type.
  EXPECT_EQ(type_of(m4, "blk.5.attn_norm.weight", {512}), GGMLType::F16);
  EXPECT_EQ(type_of(m4, "blk.5.attn_q.bias", {512}), GGMLType::F16);
  // q3_k_m: attn_v Q5_K in layers 0-1, ffn_down Q5_K in the first sixteenth, Q4_K for both after;
  // attn_output Q4_K.
  const QuantScheme k3 = QuantScheme::Q3_K_M, x4 = QuantScheme::IQ4_XS;
  EXPECT_EQ(type_of(k3, "blk.1.attn_v.weight", {512, 128}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(k3, "blk.2.attn_v.weight", {512, 128}), GGMLType::Q4_K);
  EXPECT_EQ(type_of(k3, "blk.0.ffn_down.weight", {1024, 512}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(k3, "blk.1.ffn_down.weight", {1024, 512}), GGMLType::Q4_K);
  EXPECT_EQ(type_of(k3, "blk.7.attn_output.weight", {512, 512}), GGMLType::Q4_K);
  EXPECT_EQ(type_of(k3, "blk.7.ffn_up.weight", {512, 1024}), GGMLType::Q3_K);
  EXPECT_EQ(type_of(k3, "output.weight", {512, 1000}), GGMLType::Q6_K);
  EXPECT_EQ(type_of(k3, "blk.7.ffn_up.weight", {96, 1024}), GGMLType::Q4_0);
  // iq4_xs: ffn_down Q5_K in the first eighth; attn_v Q5_K only with 4+ heads per KV head.
  EXPECT_EQ(type_of(x4, "blk.1.ffn_down.weight", {1024, 512}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(x4, "blk.2.ffn_down.weight", {1024, 512}), GGMLType::IQ4_XS);
  EXPECT_EQ(type_of(x4, "blk.2.attn_v.weight", {512, 128}), GGMLType::IQ4_XS);
  t.name = "blk.2.attn_v.weight";
  t.ne = {512, 128};
  EXPECT_EQ(quant_target_type(x4, ModelFileKind::Llm, t, {16, false, 4}), GGMLType::Q5_K);
  EXPECT_EQ(type_of(x4, "blk.2.attn_q.weight", {96, 96}), GGMLType::IQ4_NL);
  EXPECT_EQ(type_of(x4, "output.weight", {512, 1000}), GGMLType::Q6_K);
  // Vision files are not what these schemes are for.
  t.ne = {512, 512};
  EXPECT_THROW(quant_target_type(m4, ModelFileKind::Mmproj, t, {16}), Error);
}

std::string error_of(const std::function<void()>& fn);

// q4_k_m on a whole file: per-tensor types, bytes equal to quantize_row of the source rows, and the
// result runs in the engine close to the F32 file.
TEST(Quantize, Q4KMSchemeOnLlm) {
  RandomLlamaSpec sp;
  sp.n_embd = 256, sp.n_layer = 2, sp.n_head = 4, sp.n_head_kv = 2, sp.n_ff = 512, sp.n_ctx = 64, sp.n_vocab = 96;
  sp.seed = 5;
  const std::string in = tmp("kq_f32.gguf"), out = tmp("kq_q4_k_m.gguf");
  write_random_llama(in, sp);
  quantize_gguf(in, out, QuantScheme::Q4_K_M, {}, 2);
  auto a = GGUFFile::open(in), b = GGUFFile::open(out);
  EXPECT_EQ(b->get_int("general.file_type"), 15);
  EXPECT_EQ(b->get_int("general.quantization_version"), 2);
  expect_metadata_copied(*a, *b);
  for (const GGUFTensorInfo& t : a->tensors()) {
    SCOPED_TRACE(t.name);
    const GGUFTensorInfo& q = b->tensor(t.name);
    GGMLType want = GGMLType::Q4_K;
    if (t.ne.size() == 1) want = t.type;
    else if (t.name == "output.weight") want = GGMLType::Q6_K;
    else if (t.name == "blk.1.attn_v.weight" || t.name == "blk.1.ffn_down.weight") want = GGMLType::Q6_K;  // 1 ≥ 7·2/8
    EXPECT_EQ(q.type, want);
    if (want == t.type) continue;
    const std::vector<uint8_t> exp = requantized(t, want);
    ASSERT_EQ(q.nbytes, exp.size());
    EXPECT_EQ(std::memcmp(q.data, exp.data(), exp.size()), 0);
  }
  auto ma = LlmModel::load(*a), mb = LlmModel::load(*b);
  ThreadPool pool(2);
  const int n = 6;
  std::vector<int32_t> toks = {1, 5, 9, 2, 40, 77};
  std::vector<float> ea(size_t(n) * 256), eb(ea.size()), la(96), lb(96);
  ma->embed_tokens(toks.data(), n, ea.data());
  mb->embed_tokens(toks.data(), n, eb.data());
  KvCache ca(ma->config(), 16), cb(mb->config(), 16);
  llm_forward(*ma, ca, ea.data(), n, la.data(), false, pool);
  llm_forward(*mb, cb, eb.data(), n, lb.data(), false, pool);
  float err = 0, scale = 0;
  for (int i = 0; i < 96; ++i) err = std::max(err, std::fabs(la[size_t(i)] - lb[size_t(i)])),
                              scale = std::max(scale, std::fabs(la[size_t(i)]));
  EXPECT_LT(err, 0.2f * scale);  // 4- and 6-bit weights, 8-bit activations

  // Requantizing the result needs --allow-requantize; with it, q6_k converts every matrix.
  const std::string out2 = tmp("kq_q6_k.gguf");
  const std::string e = error_of([&] { quantize_gguf(out, out2, QuantScheme::Q6_K); });
  EXPECT_NE(e.find("already quantized (q4_k)"), std::string::npos) << e;
  EXPECT_NE(e.find("--allow-requantize"), std::string::npos) << e;
  quantize_gguf(out, out2, QuantScheme::Q6_K, {}, 2, /*allow_requantize=*/true);
  auto c = GGUFFile::open(out2);
  EXPECT_EQ(c->tensor("blk.0.attn_q.weight").type, GGMLType::Q6_K);
  EXPECT_NO_THROW(LlmModel::load(*c));
  for (const std::string& p : {in, out, out2}) std::remove(p.c_str());
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Quantize, ClearErrors) {
  EXPECT_NE(error_of([] { parse_quant_scheme("q5_k"); }).find("'q5_k'"), std::string::npos);
  const std::string in = make_llm("err_in.gguf");
  EXPECT_NE(error_of([&] { quantize_gguf(in, in, QuantScheme::Q8_0); }).find("is the input"), std::string::npos);
  EXPECT_NE(error_of([&] { quantize_gguf(tmp("missing.gguf"), tmp("x.gguf"), QuantScheme::Q8_0); }), "");
  // Not a GGUF.
  const std::string junk = tmp("junk.gguf");
  { std::ofstream(junk) << "this is not a gguf file at all"; }
  EXPECT_NE(error_of([&] { quantize_gguf(junk, tmp("x.gguf"), QuantScheme::Q8_0); }), "");
  // An architecture that is neither.
  GGUFWriter w;
  w.set_string("general.architecture", "whisper");
  std::vector<float> v(32, 1.0f);
  w.add_tensor_f32("x.weight", GGMLType::F32, {32}, v.data());
  const std::string wh = tmp("whisper.gguf");
  w.write(wh);
  const std::string e = error_of([&] { quantize_gguf(wh, tmp("x.gguf"), QuantScheme::BlueLM); });
  EXPECT_NE(e.find("'whisper'"), std::string::npos) << e;
  // Nothing is left behind under the output name or as a temporary.
  EXPECT_FALSE(std::ifstream(tmp("x.gguf")).good());
  EXPECT_FALSE(std::ifstream(tmp("x.gguf.tmp")).good());
  for (const std::string& p : {in, junk, wh}) std::remove(p.c_str());
}

TEST(GGUFStreamWriter, MatchesGGUFWriterAndChecksSizes) {
  GGUFWriter ref;
  GGUFStreamWriter w;
  std::vector<float> a(64 * 3), b(32);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.25f - 7;
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(i);
  ref.set_string("general.architecture", "llama");
  ref.set("tokenizer.ggml.tokens", GGUFValue::from_strings({"a", "bc"}));
  w.set("general.architecture", GGUFValue::from_string("llama"));
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings({"a", "bc"}));
  ref.set_f32("x.f", 1.5f);
  w.set("x.f", GGUFValue::from_f32(1.5f));
  ref.add_tensor_f32("t.q8", GGMLType::Q8_0, {64, 3}, a.data());
  ref.add_tensor_f32("t.f32", GGMLType::F32, {32}, b.data());
  w.add_tensor_info("t.q8", GGMLType::Q8_0, {64, 3});
  w.add_tensor_info("t.f32", GGMLType::F32, {32});
  std::vector<uint8_t> q8(row_bytes(GGMLType::Q8_0, 64) * 3);
  for (int r = 0; r < 3; ++r) quantize_row(GGMLType::Q8_0, a.data() + r * 64, q8.data() + r * 68, 64);
  const std::string p = tmp("stream.gguf");
  w.begin(p);
  w.write_data(q8.data(), 50);  // split across calls
  w.write_data(q8.data() + 50, q8.size() - 50);
  EXPECT_THROW(w.finish(), Error);  // t.f32 missing
  w.write_data(b.data(), b.size() * 4);
  EXPECT_THROW(w.write_data(b.data(), 1), Error);  // beyond the declared tensors
  w.finish();
  std::ifstream f(p, std::ios::binary);
  std::vector<uint8_t> got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, ref.serialize());
  EXPECT_EQ(w.file_bytes(), got.size());
  std::remove(p.c_str());
  GGUFStreamWriter bad;
  EXPECT_THROW(bad.add_tensor_info("t", GGMLType::Q4_0, {48, 2}), Error);  // rows of 48 are not blocks of 32
}

}  // namespace
}  // namespace edgevlm
