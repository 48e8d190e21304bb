// LoRA adapters on the ViT and projector (general.architecture clip, targets named as the mmproj's
// tensors): the adapted model equals the same model with W + s·B·A baked into its file, merged
// (F32) or on the fly, and the engine routes a clip adapter to the vision model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "engine/engine.h"
#include "model/lora.h"
#include "model/random_model.h"
#include "vision/mmproj.h"
#include "vision/projector.h"
#include "vision/vit.h"

namespace edgevlm {
namespace {

std::string temp(const std::string& name) {
  return ::testing::TempDir() + "vision_lora_" + std::to_string(getpid()) + "_" + name;
}

RandomMmprojSpec small_spec(ProjectorType p) {
  RandomMmprojSpec s;
  s.image_size = 32;
  s.patch_size = 8;
  s.n_embd = 32;
  s.n_ff = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.projection_dim = 48;
  s.projector = p;
  if (p == ProjectorType::Qwen25VL) {
    s.n_head = 2;
    s.patch_size = 4;
  }
  return s;
}

// The image embeddings of one fixed tile.
std::vector<float> embed(const MmprojModel& m, ThreadPool& pool) {
  const VisionConfig& c = m.config();
  std::vector<float> px(size_t(3) * c.image_size * c.image_size);
  for (size_t i = 0; i < px.size(); ++i) px[i] = float((i * 53) % 97) / 48.0f - 1.0f;
  const std::vector<float> h = vit_forward(m, px.data(), 1, pool);
  return project_tiles(m, h.data(), 1, pool);
}

// The mmproj with every pair of the adapter baked in: W[o][i] += s · Σ_k B[o][k] · A[k][i].
RandomMmproj baked(RandomMmproj r, const LoraAdapter& ad) {
  for (const LoraAdapter::Pair& p : ad.pairs()) {
    NamedTensor* t = r.find(p.target);
    EXPECT_NE(t, nullptr) << p.target;
    const std::vector<float> a = LoraAdapter::values(*p.a), b = LoraAdapter::values(*p.b);
    for (int64_t o = 0; o < p.n_out; ++o)
      for (int64_t i = 0; i < p.n_in; ++i) {
        double s = 0;
        for (int64_t k = 0; k < p.rank; ++k) s += double(b[size_t(o * p.rank + k)]) * a[size_t(k * p.n_in + i)];
        t->values[size_t(o * p.n_in + i)] += float(p.scale * s);
      }
  }
  return r;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(VisionLora, EqualsTheBakedModelMergedAndOnTheFly) {
  ThreadPool pool(2);
  for (ProjectorType p : {ProjectorType::Lfm2, ProjectorType::Idefics3, ProjectorType::Qwen25VL}) {
    SCOPED_TRACE(projector_type_name(p));
    const RandomMmproj base = make_random_mmproj(small_spec(p));
    const std::string base_path = temp("base.gguf"), lora_path = temp("lora.gguf");
    base.writer().write(base_path);
    RandomLoraSpec ls;
    ls.base = base_path;
    ls.rank = 4;
    ls.strength = 0.5f;
    EXPECT_GT(write_random_lora(lora_path, ls), 2 * 6);  // every block matrix and the projector's
    auto ad = LoraAdapter::open(lora_path, 0.75f);
    EXPECT_EQ(ad->arch(), "clip");
    auto fb = GGUFFile::open(base_path);
    auto plain = MmprojModel::load(*fb);
    auto merged = MmprojModel::load(*fb, {}, {ad.get()});
    auto fly = MmprojModel::load(*fb, {}, {ad.get()}, LoraMode::OnTheFly);
    EXPECT_GT(merged->lora()->n_merged(), 0);
    EXPECT_EQ(merged->lora()->n_on_the_fly(), 0);
    EXPECT_EQ(fly->lora()->n_merged(), 0);
    auto fr = [&] {
      std::vector<uint8_t> bytes = baked(base, *ad).writer().serialize();
      return GGUFFile::from_memory(bytes.data(), bytes.size(), "baked.gguf");
    }();
    auto reference = MmprojModel::load(*fr);
    const std::vector<float> want = embed(*reference, pool), e0 = embed(*plain, pool);
    const double scale = max_abs(want);
    for (const auto* m : {merged.get(), fly.get()}) {
      const std::vector<float> got = embed(*m, pool);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-4 * scale) << i;
    }
    double diff = 0;
    for (size_t i = 0; i < want.size(); ++i) diff = std::max(diff, double(std::fabs(want[i] - e0[i])));
    EXPECT_GT(diff, 1e-2 * scale);  // the adapter changes the embeddings
    std::remove(base_path.c_str());
    std::remove(lora_path.c_str());
  }
}

TEST(VisionLora, MismatchedAdapterIsRefusedNamingTheTensor) {
  const std::string a_path = temp("a.gguf"), b_path = temp("b.gguf"), lora_path = temp("ab.gguf");
  make_random_mmproj(small_spec(ProjectorType::Lfm2)).writer().write(a_path);
  RandomMmprojSpec wide = small_spec(ProjectorType::Lfm2);
  wide.n_embd = 48;
  wide.n_head = 4;
  make_random_mmproj(wide).writer().write(b_path);
  RandomLoraSpec ls;
  ls.base = a_path;
  write_random_lora(lora_path, ls);
  auto ad = LoraAdapter::open(lora_path);
  auto fb = GGUFFile::open(b_path);
  try {
    MmprojModel::load(*fb, {}, {ad.get()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("an adapter for another model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(lora_path), std::string::npos) << e.what();
  }
  for (const std::string& p : {a_path, b_path, lora_path}) std::remove(p.c_str());
}

// The engine sends an adapter for architecture clip to the vision model, and refuses one without
// a vision model.
TEST(VisionLora, EngineRoutesClipAdaptersToTheVisionModel) {
  const char* shared = std::getenv("EDGEVLM_SHARED_DIR");
  const std::string vocab = (shared && *shared ? std::string(shared) : std::string(EDGEVLM_SOURCE_DIR) + "/../shared") +
                            "/testdata/tokenizer/ggml-vocab-gpt-2.gguf";
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  RandomLlamaSpec l;
  l.n_embd = 48, l.n_layer = 1, l.n_head = 4, l.n_head_kv = 2, l.n_ff = 64, l.n_ctx = 128;
  l.vocab_from = vocab;
  const std::string llm = temp("llm.gguf"), mmproj = temp("mm.gguf"), lora = temp("mm-lora.gguf");
  write_random_llama(llm, l);
  make_random_mmproj(small_spec(ProjectorType::Lfm2)).writer().write(mmproj);
  RandomLoraSpec ls;
  ls.base = mmproj;
  write_random_lora(lora, ls);
  Image img(32, 32);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 31) % 255);
  EngineOptions o;
  o.model_path = llm;
  o.mmproj_path = mmproj;
  o.threads = 1;
  o.tiling.strategy = "single";
  const std::vector<float> e0 = Engine::load(o)->encode(img).data;
  o.loras = {{lora, 1.0f}};
  const std::vector<float> e1 = Engine::load(o)->encode(img).data;
  o.low_memory = true;  // the mmproj is loaded per encode, the adapter with it, on the fly
  const std::vector<float> e2 = Engine::load(o)->encode(img).data;
  ASSERT_EQ(e0.size(), e1.size());
  ASSERT_EQ(e1.size(), e2.size());
  double diff = 0;
  for (size_t i = 0; i < e0.size(); ++i) {
    diff = std::max(diff, double(std::fabs(e1[i] - e0[i])));
    ASSERT_NEAR(e2[i], e1[i], 2e-4 * (1 + max_abs(e1))) << i;
  }
  EXPECT_GT(diff, 1e-3);
  o.mmproj_path.clear();
  o.low_memory = false;
  try {
    Engine::load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mmproj"), std::string::npos) << e.what();
  }
  for (const std::string& p : {llm, mmproj, lora}) std::remove(p.c_str());
}

}  // namespace
}  // namespace edgevlm
