#include "vision/mmproj.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/matmul_internal.h"

namespace edgevlm {
namespace {

std::unique_ptr<GGUFFile> to_file(const RandomMmproj& r, const std::string& name = "test-mmproj") {
  std::vector<uint8_t> bytes = r.writer().serialize();
  return GGUFFile::from_memory(bytes.data(), bytes.size(), name);
}

// The error message of loading r, or "" when it loads.
std::string load_error(const RandomMmproj& r) {
  auto f = to_file(r);
  try {
    MmprojModel::load(*f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void set_key(RandomMmproj& r, const std::string& key, GGUFValue v) {
  for (auto& kv : r.keys)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  r.keys.emplace_back(key, std::move(v));
}

TEST(Mmproj, LoadsLfm2ConfigAndWeights) {
  RandomMmprojSpec spec;
  spec.image_size = 56;
  spec.patch_size = 8;  // 7×7 patches: odd side
  spec.n_embd = 24;
  spec.n_ff = 40;
  spec.n_layer = 3;
  spec.n_head = 3;
  spec.projection_dim = 20;
  spec.proj_hidden = 28;
  spec.max_tiles = 9;
  spec.alpha = 0.25f;
  auto f = to_file(make_random_mmproj(spec));
  auto m = MmprojModel::load(*f);
  const VisionConfig& c = m->config();
  EXPECT_EQ(c.image_size, 56);
  EXPECT_EQ(c.patch_size, 8);
  EXPECT_EQ(c.patches_per_side(), 7);
  EXPECT_EQ(c.n_patches(), 49);
  EXPECT_EQ(c.merged_side(), 4);
  EXPECT_EQ(c.tokens_per_tile(), 16);
  EXPECT_EQ(c.merged_dim(), 96);
  EXPECT_EQ(c.head_dim(), 8);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.projection_dim, 20);
  EXPECT_EQ(c.projector, ProjectorType::Lfm2);
  EXPECT_EQ(c.max_tiles, 9);
  EXPECT_FLOAT_EQ(c.tiling_alpha, 0.25f);
  EXPECT_EQ(c.tiling_policy, "relaxed");
  EXPECT_EQ(c.image_start, "<image>");
  EXPECT_EQ(c.row_separator, "<row>");
  EXPECT_EQ(m->blocks.size(), 3u);
  EXPECT_EQ(m->patch_embd.n_in, 3 * 8 * 8);
  EXPECT_EQ(m->patch_embd.n_out, 24);
  EXPECT_EQ(m->pos_embd.size(), size_t(49 * 24));
  EXPECT_EQ(m->mm_1.n_in, 96);
  EXPECT_EQ(m->mm_1.n_out, 28);
  EXPECT_EQ(m->mm_2.n_out, 20);
  EXPECT_EQ(m->post_ln_w.size(), 24u);
  EXPECT_GT(m->weight_bytes(), size_t(0));
}

TEST(Mmproj, PaperShapeArithmetic) {
  VisionConfig c;  // so400m at 384: 27×27 patches → 14×14 merged tokens per tile
  c.image_size = 384;
  c.patch_size = 14;
  c.n_embd = 1152;
  c.n_head = 16;
  c.scale_factor = 2;
  EXPECT_EQ(c.patches_per_side(), 27);
  EXPECT_EQ(c.n_patches(), 729);
  EXPECT_EQ(c.merged_side(), 14);
  EXPECT_EQ(c.tokens_per_tile(), 196);
  EXPECT_EQ(c.merged_dim(), 4608);
  EXPECT_EQ(c.head_dim(), 72);
}

TEST(Mmproj, PatchSizeNeedNotDivideTheTile) {
  RandomMmprojSpec spec;
  spec.image_size = 30;
  spec.patch_size = 7;  // 4×4 patches; the last 2 pixel rows and columns are not seen, as in Conv2d
  auto f = to_file(make_random_mmproj(spec));
  auto m = MmprojModel::load(*f);
  EXPECT_EQ(m->config().patches_per_side(), 4);
  EXPECT_EQ(m->pos_embd.size(), size_t(16 * 32));
}

TEST(Mmproj, LoadsIdefics3AndQuantizedWeights) {
  RandomMmprojSpec spec;
  spec.projector = ProjectorType::Idefics3;
  spec.n_embd = 32;
  spec.n_ff = 64;
  spec.weight_type = GGMLType::Q8_0;
  auto f = to_file(make_random_mmproj(spec));
  auto m = MmprojModel::load(*f);
  EXPECT_EQ(m->config().projector, ProjectorType::Idefics3);
  EXPECT_EQ(m->mm_fc.n_in, 128);
  EXPECT_EQ(m->mm_fc.n_out, 48);
  EXPECT_EQ(m->mm_fc.type, GGMLType::Q8_0);
  EXPECT_EQ(m->blocks[0].q.type, GGMLType::Q8_0);
  EXPECT_EQ(m->patch_embd.type, GGMLType::F32);  // rows of 8·8·3 = 192 stay F32 in the generator
}

// so400m's 4304-wide down-projections cannot be Q8_0 in a file; an otherwise Q8_0 ViT gets them
// as Q8_0 rows zero-padded to whole blocks, each value within Q8_0's step of the file's.
TEST(Mmproj, Int8VitQuantizesDownProjectionsWhoseRowsAreNotWholeBlocks) {
  RandomMmprojSpec spec;
  spec.n_embd = 32;
  spec.n_ff = 40;
  spec.weight_type = GGMLType::Q8_0;
  RandomMmproj r = make_random_mmproj(spec);
  auto f = to_file(r);
  auto m = MmprojModel::load(*f);
  for (int i = 0; i < spec.n_layer; ++i) {
    const VitBlock& b = m->blocks[size_t(i)];
    ASSERT_EQ(b.down.type, GGMLType::Q8_0);
    ASSERT_EQ(b.down.n_in, 64);
    ASSERT_EQ(b.down.n_out, 32);
    ASSERT_EQ(b.down.data, b.down_q8.get());
    const NamedTensor* src = r.find("v.blk." + std::to_string(i) + ".ffn_down.weight");  // ne {40, 32}
    ASSERT_NE(src, nullptr);
    std::vector<float> row(64);
    for (int o = 0; o < 32; ++o) {
      dequantize_row(GGMLType::Q8_0, b.down.data + size_t(o) * b.down.row_stride, row.data(), 64);
      float amax = 0;
      for (int j = 0; j < 40; ++j) amax = std::max(amax, std::fabs(src->values[size_t(o * 40 + j)]));
      for (int j = 0; j < 40; ++j)  // half a step, plus the scale's F16 rounding over 127 steps
        ASSERT_NEAR(row[size_t(j)], src->values[size_t(o * 40 + j)], 0.6f * amax / 127) << o << "," << j;
      for (int j = 40; j < 64; ++j) ASSERT_EQ(row[size_t(j)], 0.0f);
    }
  }
  // A float ViT keeps the file's matrix.
  spec.weight_type = GGMLType::F32;
  auto f32 = to_file(make_random_mmproj(spec));
  auto m32 = MmprojModel::load(*f32);
  EXPECT_EQ(m32->blocks[0].down.type, GGMLType::F32);
  EXPECT_EQ(m32->blocks[0].down.n_in, 40);
  EXPECT_FALSE(m32->blocks[0].down_q8);
}

// An lfm2-projector file without edgevlm.* keys is LFM2-VL's, as llama.cpp's converter writes it:
// its family's tiling and markers (src/vision/family_lfm2.h), not edgevlm's nano conventions.
TEST(Mmproj, Lfm2FilesWithoutEdgevlmKeysAreLfm2Vl) {
  RandomMmproj r = make_random_mmproj({});
  std::erase_if(r.keys, [](const auto& kv) { return kv.first.rfind("edgevlm.", 0) == 0; });
  auto f = to_file(r);
  auto m = MmprojModel::load(*f);
  EXPECT_EQ(m->config().tiling_policy, "lfm2");
  EXPECT_EQ(m->config().max_tiles, 10);
  EXPECT_EQ(m->config().image_start, "<|image_start|>");
  EXPECT_FLOAT_EQ(m->config().proj_norm_eps, 1e-5f);
}

// Low-memory mode unmaps the mmproj after each encode: the repacked copies must go with the model,
// or every encode would leave its ViT weights behind.
TEST(Mmproj, DestroyingTheModelFreesItsRepackedWeights) {
  RandomMmprojSpec spec;
  spec.n_embd = 128;
  spec.n_ff = 512;  // 512 × 128 Q8_0 = 68 KiB, above the repacking threshold
  spec.weight_type = GGMLType::Q8_0;
  auto f = to_file(make_random_mmproj(spec));
  ThreadPool pool(2);
  const size_t before = detail::matmul_packed_bytes();
  {
    auto m = MmprojModel::load(*f);
    bool any = false;
    for (const WeightMatrix* w : m->matrices()) any |= matmul_prepare(*w, pool);
    if (!any) GTEST_SKIP() << "no repacking kernels on this CPU";
    EXPECT_GT(detail::matmul_packed_bytes(), before);
  }
  EXPECT_EQ(detail::matmul_packed_bytes(), before);
}

TEST(MmprojBadInput, MissingTensorIsNamed) {
  for (const char* name : {"mm.1.weight", "v.blk.1.ffn_down.weight", "v.position_embd.weight", "v.patch_embd.weight",
                           "v.blk.0.ln2.bias"}) {
    RandomMmproj r = make_random_mmproj({});
    r.erase(name);
    std::string err = load_error(r);
    EXPECT_NE(err.find(name), std::string::npos) << err;
    EXPECT_NE(err.find("missing"), std::string::npos) << err;
  }
}

TEST(MmprojBadInput, WrongShapeIsNamedWithBothShapes) {
  RandomMmproj r = make_random_mmproj({});
  NamedTensor* t = r.find("v.blk.1.attn_k.weight");
  ASSERT_NE(t, nullptr);
  t->ne = {32, 16};
  t->values.resize(32 * 16);
  std::string err = load_error(r);
  EXPECT_NE(err.find("v.blk.1.attn_k.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("[32, 16]"), std::string::npos) << err;
  EXPECT_NE(err.find("[32, 32]"), std::string::npos) << err;

  r = make_random_mmproj({});
  t = r.find("mm.input_norm.weight");
  t->ne = {64};
  t->values.resize(64);
  err = load_error(r);
  EXPECT_NE(err.find("mm.input_norm.weight"), std::string::npos) << err;

  r = make_random_mmproj({});  // position embeddings for another tile size
  t = r.find("v.position_embd.weight");
  t->ne = {32, 25};
  t->values.resize(32 * 25);
  err = load_error(r);
  EXPECT_NE(err.find("v.position_embd.weight"), std::string::npos) << err;

  r = make_random_mmproj({});  // projector output differs from the declared projection_dim
  t = r.find("mm.2.weight");
  t->ne = {48, 40};
  t->values.resize(48 * 40);
  err = load_error(r);
  EXPECT_NE(err.find("mm.2.weight"), std::string::npos) << err;
}

TEST(MmprojBadInput, WrongProjectorTypeOrArchitecture) {
  RandomMmproj r = make_random_mmproj({});
  set_key(r, "clip.projector_type", GGUFValue::from_string("mlp"));
  std::string err = load_error(r);
  EXPECT_NE(err.find("'mlp'"), std::string::npos) << err;
  EXPECT_NE(err.find("lfm2"), std::string::npos) << err;

  r = make_random_mmproj({});
  std::erase_if(r.keys, [](const auto& kv) { return kv.first == "clip.projector_type"; });
  err = load_error(r);
  EXPECT_NE(err.find("clip.projector_type"), std::string::npos) << err;

  r = make_random_mmproj({});
  set_key(r, "general.architecture", GGUFValue::from_string("llama"));
  err = load_error(r);
  EXPECT_NE(err.find("language model"), std::string::npos) << err;

  // idefics3 declared, lfm2 tensors present
  r = make_random_mmproj({});
  set_key(r, "clip.projector_type", GGUFValue::from_string("idefics3"));
  err = load_error(r);
  EXPECT_NE(err.find("mm.model.fc.weight"), std::string::npos) << err;
}

TEST(MmprojBadInput, InconsistentKeys) {
  struct Case {
    const char* key;
    GGUFValue value;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"clip.vision.patch_size", GGUFValue::from_u32(33), "clip.vision.patch_size"},
      {"clip.vision.patch_size", GGUFValue::from_u32(0), "clip.vision.patch_size"},
      {"clip.vision.attention.head_count", GGUFValue::from_u32(5), "head count"},
      {"clip.vision.image_std", GGUFValue::from_f32s({0.5f, 0.0f, 0.5f}), "image_std"},
      {"clip.vision.image_mean", GGUFValue::from_f32s({0.5f, 0.5f}), "image_mean"},
      // Found by fuzz_mmproj (fuzz/regressions/mmproj/huge-image-mean.gguf): the padding colour
      // derived from a mean of -2.6e33 overflowed an int.
      {"clip.vision.image_mean", GGUFValue::from_f32s({0.5f, -2.6e33f, 0.5f}), "image_mean"},
      {"clip.vision.image_std", GGUFValue::from_f32s({0.5f, 1e30f, 0.5f}), "image_std"},
      {"clip.vision.projector.scale_factor", GGUFValue::from_u32(9), "scale_factor"},
      {"clip.vision.block_count", GGUFValue::from_u32(5), "v.blk.2.ln1.weight"},
      {"clip.vision.block_count", GGUFValue::from_u32(1), "more ViT blocks"},
      {"clip.vision.embedding_length", GGUFValue::from_string("wide"), "clip.vision.embedding_length"},
      {"edgevlm.tiling.policy", GGUFValue::from_string("bestfit"), "edgevlm.tiling.policy"},
      {"clip.use_gelu", GGUFValue::from_bool(false), "GELU"},
  };
  for (auto& c : cases) {
    RandomMmproj r = make_random_mmproj({});
    set_key(r, c.key, c.value);
    std::string err = load_error(r);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.key << ": " << err;
  }
  RandomMmproj r = make_random_mmproj({});
  std::erase_if(r.keys, [](const auto& kv) { return kv.first == "clip.vision.image_size"; });
  std::string err = load_error(r);
  EXPECT_NE(err.find("clip.vision.image_size"), std::string::npos) << err;
}

// A tile of a million 1-pixel patches would run attention for hours: refused at load, by name.
TEST(MmprojHostile, PatchCountBombIsRefused) {
  RandomMmproj r = make_random_mmproj({});
  set_key(r, "clip.vision.image_size", GGUFValue::from_u32(1024));
  set_key(r, "clip.vision.patch_size", GGUFValue::from_u32(1));
  const std::string err = load_error(r);
  EXPECT_NE(err.find("1024 x 1024 patches per tile"), std::string::npos) << err;
  EXPECT_NE(err.find(std::to_string(kMaxPatchesPerTile)), std::string::npos) << err;
}

// The INT8 ViT re-quantizes an F16 down-projection at load; a NaN there was undefined behaviour
// (float to int8). Now the load fails and names the tensor and the element.
TEST(MmprojHostile, NanInAWeightThatIsRequantizedIsAnError) {
  RandomMmprojSpec spec;
  spec.n_ff = 40;  // rows of 40: stored F16 beside the Q8_0 matrices, quantized at load
  spec.weight_type = GGMLType::Q8_0;
  RandomMmproj r = make_random_mmproj(spec);
  r.find("v.blk.1.ffn_down.weight")->values[45] = std::nanf("");
  std::string err = load_error(r);
  EXPECT_NE(err.find("v.blk.1.ffn_down.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("element 5 of the row is NaN"), std::string::npos) << err;
  r.find("v.blk.1.ffn_down.weight")->values[45] = INFINITY;
  err = load_error(r);
  EXPECT_NE(err.find("infinite"), std::string::npos) << err;
}

TEST(MmprojBadInput, HalfPresentPairsAreErrors) {
  RandomMmproj r = make_random_mmproj({});
  r.erase("v.post_ln.weight");
  std::string err = load_error(r);
  EXPECT_NE(err.find("v.post_ln.weight"), std::string::npos) << err;

  r = make_random_mmproj({});  // both gone: a ViT without post-LN, as llama.cpp allows
  r.erase("v.post_ln.weight");
  r.erase("v.post_ln.bias");
  EXPECT_EQ(load_error(r), "");
}

TEST(MmprojBadInput, TruncatedTensorDataNeverReadsOutOfBounds) {
  // Cut the file anywhere: the GGUF reader or the loader must refuse it with an Error.
  std::vector<uint8_t> bytes = make_random_mmproj({}).writer().serialize();
  for (size_t cut : {bytes.size() - 1, bytes.size() - 100, bytes.size() / 2, size_t(200)}) {
    try {
      auto f = GGUFFile::from_memory(bytes.data(), cut, "cut");
      MmprojModel::load(*f);
      ADD_FAILURE() << "a file cut at " << cut << " loaded";
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace edgevlm
