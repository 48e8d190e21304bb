#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"

namespace edgevlm {
namespace {

GGUFWriter sample_writer() {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.5f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set("some.i64", [] { GGUFValue v; v.type = GGUFType::INT64; v.i = -5000000000LL; v.u = uint64_t(v.i); return v; }());
  w.set("some.f64", [] { GGUFValue v; v.type = GGUFType::FLOAT64; v.f = 0.125; return v; }());
  w.set("some.i8", [] { GGUFValue v; v.type = GGUFType::INT8; v.i = -3; v.u = uint64_t(v.i); return v; }());
  w.set("some.u16", [] { GGUFValue v; v.type = GGUFType::UINT16; v.u = 65535; v.i = 65535; return v; }());
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings({"a", "", "\xe2\x96\x81hello"}));
  w.set("tokenizer.ggml.scores", GGUFValue::from_f32s({0.5f, -1.0f, 2.0f}));
  w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s({1, 3, 1}));
  // A nested array: [[1, 2], [3]] of uint32.
  w.set("some.nested", GGUFValue::from_array(GGUFType::ARRAY, {
                                                 GGUFValue::from_array(GGUFType::UINT32, {GGUFValue::from_u32(1), GGUFValue::from_u32(2)}),
                                                 GGUFValue::from_array(GGUFType::UINT32, {GGUFValue::from_u32(3)}),
                                             }));
  std::vector<float> a(64 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 17) - 8.0f;
  w.add_tensor_f32("a.f32", GGMLType::F32, {64, 3}, a.data());
  w.add_tensor_f32("a.f16", GGMLType::F16, {64, 3}, a.data());
  w.add_tensor_f32("a.q8", GGMLType::Q8_0, {64, 3}, a.data());
  w.add_tensor_f32("a.q4", GGMLType::Q4_0, {64, 3}, a.data());
  w.add_tensor_f32("a.bf16", GGMLType::BF16, {64, 3}, a.data());
  return w;
}

TEST(GGUF, RoundTripEveryValueType) {
  const std::vector<uint8_t> img = sample_writer().serialize();
  auto f = GGUFFile::from_memory(img.data(), img.size(), "mem.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(float(f->get_float("llama.rope.freq_base")), 10000.5f);
  EXPECT_TRUE(f->get_bool_or("tokenizer.ggml.add_bos_token", false));
  EXPECT_EQ(f->get_int("some.i64"), -5000000000LL);
  EXPECT_EQ(f->get_float("some.f64"), 0.125);
  EXPECT_EQ(f->get_int("some.i8"), -3);
  EXPECT_EQ(f->get_int("some.u16"), 65535);
  EXPECT_EQ(f->get_strings("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "", "\xe2\x96\x81hello"}));
  EXPECT_EQ(f->get_floats("tokenizer.ggml.scores"), (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_EQ(f->get_ints("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 3, 1}));
  const GGUFValue* nested = f->find("some.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->arr->size(), 2u);
  EXPECT_EQ(nested->arr->at(0).arr->at(1).u, 2u);
  EXPECT_EQ(nested->arr->at(1).arr->at(0).u, 3u);
  EXPECT_EQ(f->get_int_or("missing", 7), 7);
  EXPECT_EQ(f->metadata().front().first, "general.architecture");  // file order kept

  ASSERT_EQ(f->tensors().size(), 5u);
  for (const auto& t : f->tensors()) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ((t.data - f->tensors()[0].data) % 32, 0) << t.name;
    EXPECT_EQ(t.ne, (std::vector<int64_t>{64, 3}));
    std::vector<float> row(64);
    dequantize_row(t.type, t.data + row_bytes(t.type, 64), row.data(), 64);  // second row
    for (int i = 0; i < 64; ++i) {
      const float want = float((64 + i) % 17) - 8.0f;
      // Q4_0 maps the first extreme to −8, so the opposite extreme clips to 7: error up to one step.
      EXPECT_NEAR(row[i], want, t.type == GGMLType::Q4_0 ? 1.0 : 0.04) << t.name << " " << i;
    }
  }
  EXPECT_EQ(f->tensor("a.q4").nbytes, 3u * 36u);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  // Writing the parsed file again gives the same bytes.
  GGUFWriter w2;
  for (const auto& [k, v] : f->metadata()) w2.set(k, v);
  for (const auto& t : f->tensors()) w2.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
  EXPECT_EQ(w2.serialize(), img);
}

TEST(GGUF, CustomAlignmentAndFileWrite) {
  GGUFWriter w = sample_writer();
  w.set_alignment(64);
  const std::string path = ::testing::TempDir() + "/align64.gguf";
  w.write(path);
  auto f = GGUFFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  for (const auto& t : f->tensors()) EXPECT_EQ((t.data - f->tensors()[0].data) % 64, 0) << t.name;
  std::remove(path.c_str());
}

void expect_error(const std::vector<uint8_t>& img, const std::string& needle) {
  try {
    GGUFFile::from_memory(img.data(), img.size(), "bad.gguf");
    ADD_FAILURE() << "no error, expected one containing: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

TEST(GGUF, HostileHeadersGiveNamedErrors) {
  const std::vector<uint8_t> good = sample_writer().serialize();
  auto b = good;
  b[0] = 'X';
  expect_error(b, "bad magic");
  b = good;
  put32(b, 4, 7);
  expect_error(b, "version 7");
  b = good;
  put64(b, 8, ~0ull);
  expect_error(b, "tensor count");
  b = good;
  put64(b, 16, 1ull << 60);
  expect_error(b, "metadata count");
  // First key length (at byte 24) absurd.
  b = good;
  put64(b, 24, 1ull << 62);
  expect_error(b, "beyond the end");
  expect_error(std::vector<uint8_t>(good.begin(), good.begin() + 40), "more than the file can hold");
  expect_error(std::vector<uint8_t>(good.begin(), good.begin() + 200), "corrupt GGUF file");
  expect_error(std::vector<uint8_t>(good.begin(), good.end() - 1), "past the end");
  expect_error({}, "too short");
  // First value type (after the 20-char key "general.architecture") unknown.
  b = good;
  put32(b, 24 + 8 + 20, 99);
  expect_error(b, "unknown value type 99");
}

TEST(GGUF, HostileTensorInfos) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<float> a(32, 1.0f);
  w.add_tensor_f32("t", GGMLType::F32, {32}, a.data());
  const std::vector<uint8_t> good = w.serialize();
  // Locate tensor info fields: after the KV, name "t": u64 len(1) + 't', u32 n_dims, i64 ne0, u32 type, u64 off.
  size_t p = 24 + 8 + 20 + 4 + 8 + 5;  // header + key + type + string value "llama"
  const size_t dims_at = p + 8 + 1, ne_at = dims_at + 4, type_at = ne_at + 8, off_at = type_at + 4;
  auto b = good;
  put32(b, dims_at, 9);
  expect_error(b, "9 dimensions");
  b = good;
  put64(b, ne_at, uint64_t(-5));
  expect_error(b, "negative dimension");
  b = good;
  put64(b, ne_at, 1ull << 40);
  expect_error(b, "past the end");
  b = good;
  put32(b, type_at, 77);
  expect_error(b, "unsupported tensor type type(77) (id 77) in tensor '");
  b = good;
  put32(b, type_at, uint32_t(GGMLType::IQ2_XXS));  // a GGML type this engine does not run
  expect_error(b, "unsupported tensor type iq2_xxs (id 16) in tensor '");
  try {
    GGUFFile::from_memory(b.data(), b.size(), "bad.gguf");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  b = good;
  put64(b, off_at, 1 << 20);
  expect_error(b, "past the end");
  b = good;
  put64(b, off_at, 3);
  expect_error(b, "not aligned");
  b = good;
  put32(b, type_at, uint32_t(GGMLType::Q4_0));
  put64(b, ne_at, 33);
  expect_error(b, "block size");
}

// Tensors over the same bytes: each matrix would get its own prepared copy at load, so a small file
// could cost many times its size (a 1.4 MB decoder reached 4.6 GB). Refused, as llama.cpp does.
TEST(GGUF, HostileOverlappingTensorsAreRefused) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<float> a(32, 1.0f);
  w.add_tensor_f32("a", GGMLType::F32, {32}, a.data());
  w.add_tensor_f32("b", GGMLType::F32, {32}, a.data());
  const std::vector<uint8_t> good = w.serialize();
  EXPECT_NO_THROW(GGUFFile::from_memory(good.data(), good.size(), "good.gguf"));
  const size_t first_info = 24 + 8 + 20 + 4 + 8 + 5;
  const size_t info_bytes = 8 + 1 + 4 + 8 + 4 + 8;  // name "a", n_dims, ne0, type, offset
  const size_t b_offset_at = first_info + info_bytes + info_bytes - 8;
  auto b = good;
  put64(b, b_offset_at, 0);  // "b" over "a"
  expect_error(b, "overlap");
  b = good;
  put64(b, b_offset_at, 64);  // "b" starting inside "a" (128 bytes)
  expect_error(b, "overlap");
}

// Metadata whose parsed form would be many times its size (a million empty nested arrays): refused
// once it passes the budget, before the memory is taken.
TEST(GGUF, HostileMetadataBombIsRefused) {
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); };
  auto u64 = [&](uint64_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 8); };
  const uint64_t n = 1000000;
  b.reserve(64 + n * 12);
  b.insert(b.end(), {'G', 'G', 'U', 'F'});
  u32(3);
  u64(0);  // tensors
  u64(1);  // metadata
  u64(4);
  b.insert(b.end(), {'b', 'o', 'm', 'b'});
  u32(uint32_t(GGUFType::ARRAY));
  u32(uint32_t(GGUFType::ARRAY));
  u64(n);
  for (uint64_t i = 0; i < n; ++i) {
    u32(uint32_t(GGUFType::UINT8));
    u64(0);
  }
  expect_error(b, "metadata would take more than");
  // The same count of empty strings costs about 4x its bytes and still loads.
  std::vector<std::string> empty(200000);
  GGUFWriter w;
  w.set("strings", GGUFValue::from_strings(empty));
  const auto ok = w.serialize();
  EXPECT_NO_THROW(GGUFFile::from_memory(ok.data(), ok.size(), "strings.gguf"));
}

TEST(GGUF, MissingFileAndWrongTypeErrors) {
  try {
    GGUFFile::open("/nonexistent/model.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
  const std::vector<uint8_t> img = sample_writer().serialize();
  auto f = GGUFFile::from_memory(img.data(), img.size(), "m.gguf");
  EXPECT_THROW(f->get_int("general.architecture"), Error);
  EXPECT_THROW(f->get_string("llama.block_count"), Error);
  EXPECT_THROW(f->get_strings("tokenizer.ggml.scores"), Error);
  EXPECT_THROW(f->tensor("absent"), Error);
}

// Truncations and random bit flips of a valid file: every outcome is either a parsed file whose
// tensors all lie inside the image, or an edgevlm::Error. Run under ASan+UBSan by `make test`.
TEST(GGUFFuzz, TruncationsAndBitFlipsNeverCrash) {
  const std::vector<uint8_t> good = sample_writer().serialize();
  size_t parsed = 0, rejected = 0;
  auto check = [&](const std::vector<uint8_t>& b) {
    try {
      auto f = GGUFFile::from_memory(b.data(), b.size(), "fuzz.gguf");
      for (const auto& t : f->tensors()) {
        ASSERT_LE(t.offset + t.nbytes, b.size());
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < t.nbytes; ++i) sink ^= t.data[i];  // touch every byte (ASan checks)
      }
      for (const auto& [k, v] : f->metadata()) {
        if (v.type == GGUFType::ARRAY) {
          for (size_t i = 0; i < v.arr->size() && i < 64; ++i) (void)v.arr->at(i);
        }
      }
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t n = 0; n < good.size(); n += (n < 512 ? 1 : 61)) check(std::vector<uint8_t>(good.begin(), good.begin() + n));
  std::mt19937_64 rng(12345);
  for (int it = 0; it < 4000; ++it) {
    auto b = good;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Most flips land in the header region where the parser makes its decisions.
      const size_t at = (rng() % 4 != 0) ? rng() % std::min<size_t>(b.size(), 400) : rng() % b.size();
      b[at] ^= uint8_t(1u << (rng() % 8));
    }
    check(b);
  }
  EXPECT_GT(rejected, 1000u);
  EXPECT_GT(parsed, 100u);  // flips in tensor data still parse
}

}  // namespace
}  // namespace edgevlm
