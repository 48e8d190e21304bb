#include "engine/vlm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "engine/generate.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"

namespace edgevlm {
namespace {

// ---- layout and placeholders (no model needed)

ImageEmbeddings fake_image(Grid g, int thumbnail_index) {
  ImageEmbeddings e;
  e.grid = g;
  e.thumbnail_index = thumbnail_index;
  e.n_tiles = g.tiles() + (thumbnail_index >= 0 ? 1 : 0);
  e.tokens_per_tile = 2;
  e.n_embd = 3;
  e.data.resize(size_t(e.positions()) * 3);
  for (size_t i = 0; i < e.data.size(); ++i) e.data[i] = float(i);
  return e;
}

const ImageMarkers kMk = {{100}, {101}, {102}, {103}};  // start, end, tile, row

std::string render(const std::vector<LayoutItem>& seq) {
  std::string s;
  for (const auto& it : seq) {
    if (it.token == 100) s += "<image>";
    else if (it.token == 101) s += "</image>";
    else if (it.token == 102) s += "<tile>";
    else if (it.token == 103) s += "<row>";
    else s += "T" + std::to_string(it.tile);
  }
  return s;
}

TEST(VlmLayout, GridRowsTilesAndThumbnailLast) {
  // docs/FORMAT.md §2: <image> T00 <tile> T10 <row> T01 <tile> T11 <row> THUMB </image>
  EXPECT_EQ(render(image_layout(fake_image({2, 2}, 4), kMk)),
            "<image>T0<tile>T1<row>T2<tile>T3<row>T4</image>");
  EXPECT_EQ(render(image_layout(fake_image({2, 1}, 2), kMk)), "<image>T0<tile>T1<row>T2</image>");
  EXPECT_EQ(render(image_layout(fake_image({1, 3}, 3), kMk)), "<image>T0<row>T1<row>T2<row>T3</image>");
  EXPECT_EQ(render(image_layout(fake_image({1, 1}, -1), kMk)), "<image>T0</image>");
  EXPECT_EQ(render(image_layout(fake_image({3, 1}, -1), kMk)), "<image>T0<tile>T1<tile>T2</image>");
  // thumbnail first (InternVL-style placement): it leads, then a row break
  EXPECT_EQ(render(image_layout(fake_image({2, 1}, 0), kMk)), "<image>T0<row>T1<tile>T2</image>");
  // markers the model leaves empty are left out
  EXPECT_EQ(render(image_layout(fake_image({2, 1}, 2), ImageMarkers{})), "T0T1T2");
}

TEST(VlmPlaceholders, CountAndAdd) {
  EXPECT_EQ(count_image_placeholders("a <image> b <image><image>"), 3);
  EXPECT_EQ(count_image_placeholders("no images, <imag> nor </image>"), 0);
  EXPECT_EQ(add_image_placeholders("What is this?", 1), "<image>\nWhat is this?");
  EXPECT_EQ(add_image_placeholders("Compare <image> with this", 2), "<image>\nCompare <image> with this");
  EXPECT_EQ(add_image_placeholders("x <image>", 1), "x <image>");
  EXPECT_EQ(add_image_placeholders("plain", 0), "plain");
}

TEST(VlmBadInput, MorePlaceholdersThanImages) {
  try {
    add_image_placeholders("<image> and <image>", 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("places 2 images"), std::string::npos) << e.what();
  }
}

// ---- parity with the PyTorch reference (fixtures made by tests/vision_parity/make_fixtures.py)

std::string fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

struct Pair {
  std::unique_ptr<GGUFFile> llm_file, mm_file, ref;
  std::unique_ptr<LlmModel> llm;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<MmprojModel> mm;
};

Pair load_pair() {
  Pair p;
  p.llm_file = GGUFFile::open(fixture("tiny.gguf"));
  p.mm_file = GGUFFile::open(fixture("tiny-mmproj.gguf"));
  p.ref = GGUFFile::open(fixture("reference.gguf"));
  p.llm = LlmModel::load(*p.llm_file);
  p.tok = Tokenizer::from_gguf(*p.llm_file);
  p.mm = MmprojModel::load(*p.mm_file);
  return p;
}

std::vector<float> tensor_f32(const GGUFFile& f, const std::string& name) {
  const GGUFTensorInfo& t = f.tensor(name);
  EXPECT_EQ(t.type, GGMLType::F32);
  const float* d = reinterpret_cast<const float*>(t.data);
  return std::vector<float>(d, d + t.n_elements());
}

// Largest |a − b| / max(1, |b|).
double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::fabs(double(a[i]) - b[i]) / std::max(1.0, std::fabs(double(b[i]))));
  return m;
}

// Tolerances: the reference and the engine use the same f16-rounded weights and identical
// (bit-exact) tiles, so only float32 summation order differs; measured ≤ 1.7e-6 relative (of
// max(1, |ref|)) through 2 blocks, 5 LayerNorms and the projector, so 2e-5 leaves 10× room.
// Greedy ids must match exactly: the fixture keeps only seeds whose every greedy step leads by
// ≥ reference.min_margin (0.05) logits.
constexpr double kVitTol = 2e-5, kProjTol = 2e-5;

TEST(VlmParity, VitProjectorPromptAndGreedyAnswerMatchPyTorch) {
  Pair p = load_pair();
  const GGUFFile& ref = *p.ref;
  ThreadPool pool(2);
  const TilingConfig tcfg = tiling_config_for(p.mm->config());
  const ChatTemplate tmpl = chat_template_from_gguf(*p.llm_file);
  ASSERT_EQ(tmpl, ChatTemplate::ChatML);
  const ImageMarkers markers = image_markers(p.mm->config(), *p.tok);
  const int n_cases = int(ref.get_int("reference.cases"));
  ASSERT_GE(n_cases, 5);
  int n_multi_tile = 0;

  for (int ci = 0; ci < n_cases; ++ci) {
    SCOPED_TRACE("case " + std::to_string(ci));
    const std::string pre = "case" + std::to_string(ci) + ".";
    const std::vector<std::string> files = ref.get_strings(pre + "images");
    std::vector<ImageEmbeddings> embs;
    for (size_t ii = 0; ii < files.size(); ++ii) {
      SCOPED_TRACE(files[ii]);
      const std::string q = pre + "image" + std::to_string(ii) + ".";
      Image img = load_image(fixture(files[ii]));
      TiledImage tiles = preprocess_image(img, tcfg);
      const std::vector<int64_t> grid = ref.get_ints(q + "grid");
      ASSERT_EQ(tiles.grid.m, grid[0]);
      ASSERT_EQ(tiles.grid.n, grid[1]);
      ASSERT_EQ(tiles.n_tiles, ref.get_int(q + "n_tiles"));
      if (tiles.n_tiles > 1) ++n_multi_tile;
      // Preprocessing is another module's; checked here only so that a mismatch there is not
      // mistaken for a ViT one.
      const std::vector<float> sums = ref.get_floats(q + "tile_sums");
      for (int t = 0; t < tiles.n_tiles; ++t) {
        double s = 0;
        for (size_t k = 0; k < tiles.tile_floats(); ++k) s += tiles.tile(t)[k];
        // one pixel one level off moves a sum by 2/255/std ≈ 0.016
        ASSERT_NEAR(s, sums[size_t(t)], 1e-6 * std::max(1.0, std::fabs(s))) << "tile " << t << " pixels differ";
      }
      ImageEmbeddings e = encode_tiles(*p.mm, tiles, pool, 2, true);
      const double vit_err = max_rel_err(e.vit_out, tensor_f32(ref, q + "vit"));
      const double proj_err = max_rel_err(e.data, tensor_f32(ref, q + "proj"));
      EXPECT_LT(vit_err, kVitTol);
      EXPECT_LT(proj_err, kProjTol);
      std::printf("[parity] case %d %s grid %s, %d tiles: ViT max err %.2e, projector max err %.2e\n", ci,
                  files[ii].c_str(), grid_str(tiles.grid).c_str(), tiles.n_tiles, vit_err, proj_err);
      embs.push_back(std::move(e));
    }

    const std::string question = ref.get_string(pre + "question");
    const std::string text =
        apply_chat_template(tmpl, {{"user", add_image_placeholders(question, int(files.size()))}}, true);
    std::vector<const ImageEmbeddings*> ptrs;
    for (auto& e : embs) ptrs.push_back(&e);
    VlmPrompt vp = assemble_prompt(*p.llm, *p.tok, markers, text, ptrs, p.tok->add_bos_default());
    std::vector<int32_t> want_ids;
    for (int64_t v : ref.get_ints(pre + "prompt_ids")) want_ids.push_back(int32_t(v));
    ASSERT_EQ(vp.tokens, want_ids);  // -1 marks image positions on both sides

    KvCache cache(p.llm->config(), 512);
    Generator gen(*p.llm, *p.tok, cache, pool);
    GenerateParams gp;
    gp.n_predict = 12;
    gp.sampler.temperature = 0;
    GenerateResult r = gen.generate_from_embeddings(vp.embeddings.data(), vp.n_positions, gp, {}, vp.text_tokens());
    std::vector<int32_t> want_answer;
    for (int64_t v : ref.get_ints(pre + "answer_ids")) want_answer.push_back(int32_t(v));
    EXPECT_EQ(r.tokens, want_answer);
  }
  EXPECT_GE(n_multi_tile, 3);  // several aspect ratios really produced multi-tile grids
}

TEST(VlmParity, BatchedEncodingOfSeveralImagesEqualsOneByOne) {
  Pair p = load_pair();
  ThreadPool pool(2);
  const TilingConfig tcfg = tiling_config_for(p.mm->config());
  TiledImage t = preprocess_image(load_image(fixture("big.png")), tcfg);
  ImageEmbeddings all = encode_tiles(*p.mm, t, pool, 0);
  ImageEmbeddings one = encode_tiles(*p.mm, t, pool, 1);
  EXPECT_LT(max_rel_err(all.data, one.data), 1e-5);
}

// encode_image cuts tiles lazily (ImageTiler, inside the ViT's prepare stage) and may pipeline
// them: every batch size, pipelined or not, gives the embeddings of preprocess_image + one batch
// (within float tolerance: batching may change summation order; pipelining changes nothing).
TEST(VlmEncode, BatchAndPipelineGiveTheSameEmbeddings) {
  Pair p = load_pair();
  ThreadPool pool(2);
  const TilingConfig tcfg = tiling_config_for(p.mm->config());
  for (const char* file : {"big.png", "wide.png", "tall.png"}) {
    SCOPED_TRACE(file);
    const Image img = load_image(fixture(file));
    const ImageEmbeddings base = encode_tiles(*p.mm, preprocess_image(img, tcfg), pool, VitOptions(0, false), true);
    ASSERT_GT(base.n_tiles, 2);
    for (int batch : {1, 2, 4, 0}) {
      SCOPED_TRACE("batch " + std::to_string(batch));
      const ImageEmbeddings serial = encode_image(*p.mm, img, tcfg, pool, VitOptions(batch, false), true);
      const ImageEmbeddings piped = encode_image(*p.mm, img, tcfg, pool, VitOptions(batch, true), true);
      EXPECT_EQ(serial.grid, base.grid);
      EXPECT_EQ(serial.thumbnail_index, base.thumbnail_index);
      EXPECT_LT(max_rel_err(serial.vit_out, base.vit_out), 1e-5);
      EXPECT_LT(max_rel_err(serial.data, base.data), 1e-5);
      EXPECT_EQ(piped.vit_out, serial.vit_out);
      EXPECT_EQ(piped.data, serial.data);
      EXPECT_EQ(piped.vit_timings.pipelined, piped.vit_timings.n_batches > 1);
      EXPECT_DOUBLE_EQ(piped.vit_ms, piped.vit_timings.wall_ms);
    }
  }
}

TEST(VlmBadInput, PromptAssemblyErrors) {
  Pair p = load_pair();
  const ImageMarkers mk = image_markers(p.mm->config(), *p.tok);
  ImageEmbeddings e = fake_image({1, 1}, -1);  // 3 wide: not the LLM's 48
  try {
    assemble_prompt(*p.llm, *p.tok, mk, "look: <image>", {&e}, false);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("width is 48"), std::string::npos) << err.what();
  }
  try {
    assemble_prompt(*p.llm, *p.tok, mk, "no place for it", {&e}, false);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("0 image places"), std::string::npos) << err.what();
  }
}

TEST(VlmBadInput, ExtremeImagesEncodeToFiniteEmbeddings) {
  Pair p = load_pair();
  ThreadPool pool(2);
  const TilingConfig tcfg = tiling_config_for(p.mm->config());
  struct Case {
    int w, h;
  };
  for (Case c : {Case{1, 1}, Case{20000, 50}, Case{50, 20000}, Case{2, 1}}) {
    SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h));
    Image img(c.w, c.h);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 37 % 251);
    ImageEmbeddings e = encode_image(*p.mm, img, tcfg, pool);
    ASSERT_EQ(e.data.size(), size_t(e.positions()) * 48);
    ASSERT_GE(e.n_tiles, 1);
    ASSERT_LE(e.grid.tiles(), 4);
    for (float v : e.data) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(Vlm, MarkersAreSingleVocabularyTokens) {
  Pair p = load_pair();
  const ImageMarkers mk = image_markers(p.mm->config(), *p.tok);
  ASSERT_EQ(mk.start.size(), 1u);
  EXPECT_EQ(p.tok->token_text(mk.start[0]), "<image>");
  EXPECT_EQ(p.tok->token_text(mk.end[0]), "</image>");
  EXPECT_EQ(p.tok->token_text(mk.tile_sep[0]), "<tile>");
  EXPECT_EQ(p.tok->token_text(mk.row_sep[0]), "<row>");
}

TEST(Vlm, TilingConfigFollowsTheModelAndOverrides) {
  Pair p = load_pair();
  TilingConfig t = tiling_config_for(p.mm->config());
  EXPECT_EQ(t.strategy, TilingStrategy::Relaxed);
  EXPECT_EQ(t.tile_size, 40);
  EXPECT_EQ(t.max_tiles, 4);
  EXPECT_EQ(t.alpha, double(0.1f));
  EXPECT_EQ(t.thumbnail, ThumbnailPlacement::Last);
  TilingOverrides o;
  o.strategy = "internvl";
  o.max_tiles = 9;
  o.alpha = 0.3;
  t = tiling_config_for(p.mm->config(), o);
  EXPECT_EQ(t.strategy, TilingStrategy::InternVL);
  EXPECT_EQ(t.max_tiles, 9);
  EXPECT_EQ(t.alpha, 0.3);
  o = {};
  o.strategy = "bestfit";
  EXPECT_THROW(tiling_config_for(p.mm->config(), o), Error);
}

}  // namespace
}  // namespace edgevlm
