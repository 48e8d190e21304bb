#include "engine/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <iterator>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <string>

#include "core/error.h"
#include "engine/prefill.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/random_model.h"
#include "model/tokenizer.h"
#include "vision/image.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

// The parity fixtures of tests/vision_parity (a tiny LLM + mmproj pair and the PyTorch reference's
// greedy answers, made by tests/vision_parity/make_fixtures.py; see src/engine/vlm_test.cc).
std::string fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

EngineOptions fixture_options(bool low_memory = false) {
  EngineOptions o;
  o.model_path = fixture("tiny.gguf");
  o.mmproj_path = fixture("tiny-mmproj.gguf");
  o.threads = 2;
  o.n_ctx = 1024;
  o.low_memory = low_memory;
  return o;
}

// A session on its own engine (the session keeps the engine alive).
std::unique_ptr<Session> open_session(const EngineOptions& o, const SessionOptions& so = {}) {
  return std::make_unique<Session>(Engine::load(o), so);
}

GenerateParams greedy(int n) {
  GenerateParams gp;
  gp.n_predict = n;
  gp.sampler.temperature = 0;
  return gp;
}

// `edgevlm run`'s path, synchronous: encode every image, assemble, generate (chunk 0: the whole
// prompt in one step).
std::vector<int32_t> run_synchronously(const std::vector<std::string>& images, const std::string& question, int n,
                                       VitOptions vit = {}, int chunk = kDefaultPrefillChunk,
                                       int* n_prompt = nullptr) {
  auto lf = GGUFFile::open(fixture("tiny.gguf"));
  auto mf = GGUFFile::open(fixture("tiny-mmproj.gguf"));
  auto llm = LlmModel::load(*lf);
  auto tok = Tokenizer::from_gguf(*lf);
  auto mm = MmprojModel::load(*mf);
  ThreadPool pool(2);
  const TilingConfig tcfg = tiling_config_for(mm->config());
  std::vector<ImageEmbeddings> embs;
  for (const auto& p : images) embs.push_back(encode_image(*mm, load_image(p), tcfg, pool, vit));
  std::vector<const ImageEmbeddings*> ptrs;
  for (auto& e : embs) ptrs.push_back(&e);
  const ChatTemplate tmpl = chat_template_for("auto", *lf);
  const std::string text =
      apply_chat_template(tmpl, {{"user", add_image_placeholders(question, int(images.size()))}}, true);
  VlmPrompt vp = assemble_prompt(*llm, *tok, image_markers(mm->config(), *tok), text, ptrs, tok->add_bos_default());
  KvCache cache(llm->config(), 1024);
  Generator gen(*llm, *tok, cache, pool);
  GenerateParams gp = greedy(n);
  gp.chunk_size = chunk > 0 ? chunk : vp.n_positions;
  gp.stop_strings = chat_template_stop_strings(tmpl);
  if (n_prompt) *n_prompt = vp.n_positions;
  return gen.generate_from_embeddings(vp.embeddings.data(), vp.n_positions, gp, {}, vp.text_tokens()).tokens;
}

struct RefCase {
  std::vector<std::string> images;
  std::string question;
  std::vector<int32_t> answer;
};

std::vector<RefCase> reference_cases() {
  auto ref = GGUFFile::open(fixture("reference.gguf"));
  std::vector<RefCase> cases;
  const int n = int(ref->get_int("reference.cases"));
  for (int ci = 0; ci < n; ++ci) {
    const std::string pre = "case" + std::to_string(ci) + ".";
    RefCase c;
    for (const auto& f : ref->get_strings(pre + "images")) c.images.push_back(fixture(f));
    c.question = ref->get_string(pre + "question");
    for (int64_t v : ref->get_ints(pre + "answer_ids")) c.answer.push_back(int32_t(v));
    cases.push_back(std::move(c));
  }
  return cases;
}

void expect_same_tokens_as_reference(bool low_memory) {
  const auto cases = reference_cases();
  ASSERT_GE(cases.size(), 3u);
  EngineOptions o = fixture_options(low_memory);
  o.kv_type = KvType::F32;  // exact, like the reference (the INT8 default is exercised by the other tests)
  auto sp = open_session(o);
  Session& s = *sp;
  size_t compared = 0;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    SCOPED_TRACE("case " + std::to_string(ci));
    const RefCase& c = cases[ci];
    s.reset();
    for (const auto& p : c.images) s.attach_image(p);
    EXPECT_EQ(s.pending_images(), int(c.images.size()));
    std::string streamed;
    SessionAnswer a = s.ask(c.question, greedy(int(c.answer.size())), [&](std::string_view t) {
      streamed += t;
      return true;
    });
    EXPECT_EQ(a.n_images, int(c.images.size()));
    EXPECT_EQ(streamed, a.result.text);
    // The reference answers were generated without stop strings; compare the prefix the session
    // produced (it stops at the template's end of turn).
    ASSERT_LE(a.result.tokens.size(), c.answer.size());
    EXPECT_EQ(a.result.tokens, std::vector<int32_t>(c.answer.begin(), c.answer.begin() + a.result.tokens.size()));
    compared += a.result.tokens.size();
    if (ci < 2) {
      EXPECT_EQ(a.result.tokens, run_synchronously(c.images, c.question, int(c.answer.size())));
    }
  }
  EXPECT_GE(compared, 3 * cases.size());  // the answers really were compared, not cut at once
}

TEST(Session, SameTokensAsReferenceAndSynchronousPath) { expect_same_tokens_as_reference(false); }

TEST(Session, LowMemorySameTokens) { expect_same_tokens_as_reference(true); }

// Issue 6's acceptance: the same greedy tokens with every runtime feature on or off. The baseline
// is the plainest path: synchronous, all tiles in one ViT batch, no pipeline, the whole prompt in
// one prefill step. Each variant turns one feature to another setting, through the session
// (decoupled: the image is encoded in the background) and through the synchronous path.
TEST(Session, EveryRuntimeFeatureOnOrOffGivesTheSameTokens) {
  const std::vector<std::string> images = {fixture("big.png"), fixture("wide.png"), fixture("tall.png"),
                                           fixture("square.png")};
  const std::string q = "Describe the pictures.";
  const int n = 10;
  int n_prompt = 0;
  const std::vector<int32_t> want = run_synchronously(images, q, n, VitOptions(0, false), 0, &n_prompt);
  ASSERT_GE(want.size(), 3u);
  ASSERT_GT(n_prompt, 128);  // chunks of 32 and 128 really cut the prompt

  struct Variant {
    const char* name;
    int vit_batch;
    bool pipeline, low_memory;
    int chunk;  // 0: whole prompt
  };
  const Variant variants[] = {
      {"defaults", kDefaultVitBatch, kDefaultVitPipeline, false, kDefaultPrefillChunk},
      {"vit batch 1", 1, false, false, 0},   {"vit batch 2", 2, false, false, 0},
      {"vit batch 4", 4, false, false, 0},   {"vit batch 1 pipelined", 1, true, false, 0},
      {"vit batch 2 pipelined", 2, true, false, 0}, {"vit batch 4 pipelined", 4, true, false, 0},
      {"low-memory", 0, false, true, 0},     {"low-memory pipelined", 2, true, true, 128},
      {"chunk 32", 0, false, false, 32},     {"chunk 128", 0, false, false, 128},
      {"chunk 512", 0, false, false, 512},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(run_synchronously(images, q, n, VitOptions(v.vit_batch, v.pipeline), v.chunk), want) << "synchronous";
    EngineOptions o = fixture_options(v.low_memory);
    o.kv_type = KvType::F32;  // as run_synchronously's cache: only the features above vary
    o.vit_batch = v.vit_batch;
    o.vit_pipeline = v.pipeline;
    auto sp = open_session(o);
    Session& s = *sp;
    for (const auto& p : images) s.attach_image(p);
    GenerateParams gp = greedy(n);
    gp.chunk_size = v.chunk > 0 ? v.chunk : n_prompt;
    SessionAnswer a = s.ask(q, gp);
    EXPECT_EQ(a.n_positions, n_prompt);
    EXPECT_EQ(a.result.tokens, want) << "decoupled session";
  }
}

std::string gpt2_vocab() {
  const char* env = std::getenv("EDGEVLM_SHARED_DIR");
  return (env && *env ? std::string(env) : std::string(EDGEVLM_SOURCE_DIR) + "/../shared") +
         "/testdata/tokenizer/ggml-vocab-gpt-2.gguf";
}

// Every runtime feature on or off, and the KV cache type, give the same tokens on a model family's
// random pair (F32, F16 and Q8 agree on these pairs, whose greedy margins are wide). attach puts
// the images in a session; returns the image positions of the reference answer.
int expect_runtime_features_keep_the_tokens(const std::string& llm, const std::string& mmproj,
                                            const std::function<void(Session&)>& attach) {
  const std::string q = "Describe the pictures.";
  const int n = 8;
  auto answer = [&](int vit_batch, bool pipeline, bool low_memory, KvType kv, int chunk, bool while_typing,
                    int* n_pos = nullptr, int* n_img = nullptr) {
    EngineOptions o;
    o.model_path = llm;
    o.mmproj_path = mmproj;
    o.threads = 2;
    o.n_ctx = 4096;
    o.low_memory = low_memory;
    o.kv_type = kv;
    o.vit_batch = vit_batch;
    o.vit_pipeline = pipeline;
    SessionOptions so;
    so.prefill_while_typing = while_typing;
    auto sp = open_session(o, so);
    attach(*sp);
    GenerateParams gp = greedy(n);
    gp.stop_at_eog = false;
    gp.chunk_size = chunk > 0 ? chunk : 4096;
    SessionAnswer a = sp->ask(q, gp);
    if (n_pos) *n_pos = a.n_positions;
    if (n_img) *n_img = a.n_image_positions;
    return a.result.tokens;
  };
  int n_pos = 0, n_img = 0;
  const std::vector<int32_t> want = answer(0, false, false, KvType::F32, 0, false, &n_pos, &n_img);
  EXPECT_EQ(want.size(), size_t(n));
  EXPECT_GT(n_pos, 64);
  struct Variant {
    const char* name;
    int vit_batch;
    bool pipeline, low_memory;
    KvType kv;
    int chunk;
    bool while_typing;
  };
  const Variant variants[] = {
      {"defaults", kDefaultVitBatch, kDefaultVitPipeline, false, KvType::F32, kDefaultPrefillChunk, true},
      {"vit batch 1", 1, false, false, KvType::F32, 0, false},
      {"vit batch 3 pipelined", 3, true, false, KvType::F32, 0, false},
      {"low-memory", 0, false, true, KvType::F32, 0, false},
      {"low-memory pipelined, chunk 16", 2, true, true, KvType::F32, 16, true},
      {"chunk 7", 0, false, false, KvType::F32, 7, false},
      {"decoupled, prefill while typing", kDefaultVitBatch, true, false, KvType::F32, 32, true},
      {"kv f16", 0, false, false, KvType::F16, 0, false},
      {"kv q8 (the default)", 0, false, false, KvType::Q8, 0, false},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(answer(v.vit_batch, v.pipeline, v.low_memory, v.kv, v.chunk, v.while_typing), want);
  }
  return n_img;
}

// SmolVLM (projector idefics3: tiles by its grid rule, per-tile row/col markers, the global image
// last, scale factor 4), a random pair in llama.cpp's converter conventions.
TEST(Session, Idefics3PairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) {
  const std::string vocab = gpt2_vocab();
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  const std::string dir = ::testing::TempDir();
  const std::string llm = dir + "/idefics3_rt.gguf", mmproj = dir + "/idefics3_rt-mmproj.gguf";
  RandomIdefics3Spec spec;
  spec.vocab_from = vocab;
  spec.image_size = 32;
  spec.patch_size = 4;
  spec.scale_factor = 4;
  spec.preproc_image_size = 64;  // up to 2 × 2 tiles + the global image
  spec.seed = 11;
  write_random_idefics3(llm, mmproj, spec);
  const int n_img = expect_runtime_features_keep_the_tokens(llm, mmproj, [](Session& s) {
    for (const char* p : {"big.png", "wide.png", "tall.png"}) s.attach_image(fixture(p));
  });
  // big (83 × 77) → 2 × 2 tiles, wide (150 × 44) → 2 × 1, tall (37 × 101) → 1 × 2, each + global:
  // 4 tokens per tile.
  EXPECT_EQ(n_img, (5 + 3 + 3) * 4);
}

// InternVL (class token, layer scales, its own grid rule with the thumbnail last).
TEST(Session, InternVLPairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) {
  const std::string vocab = gpt2_vocab();
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  const std::string dir = ::testing::TempDir();
  const std::string llm = dir + "/internvl_rt.gguf", mmproj = dir + "/internvl_rt-mmproj.gguf";
  RandomIdefics3Spec spec;
  spec.vocab_from = vocab;
  spec.image_size = 32;
  spec.patch_size = 4;
  spec.max_tiles = 6;
  spec.seed = 7;  // seed 5's last greedy token is within INT8-KV rounding of its runner-up
  write_random_internvl(llm, mmproj, spec);
  const int n_img = expect_runtime_features_keep_the_tokens(llm, mmproj, [](Session& s) {
    for (const char* p : {"big.png", "wide.png"}) s.attach_image(fixture(p));
  });
  EXPECT_GT(n_img, 2 * 16);  // more than one tile per image
}

// LFM2-VL (position embeddings resized to each image, 512-px tiles, a thumbnail of its own size,
// the hybrid convolution + attention decoder, whose state the cache keeps).
TEST(Session, Lfm2VlPairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) {
  const std::string vocab = gpt2_vocab();
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  const std::string dir = ::testing::TempDir();
  const std::string llm = dir + "/lfm2vl_rt.gguf", mmproj = dir + "/lfm2vl_rt-mmproj.gguf";
  RandomIdefics3Spec spec;
  spec.vocab_from = vocab;
  spec.image_size = 64;  // a 4 × 4 position grid
  spec.patch_size = 16;
  spec.n_embd = 16;
  spec.n_ff_vit = 32;
  spec.n_head_vit = 2;
  spec.n_layer = 3;
  spec.seed = 6;
  write_random_lfm2vl(llm, mmproj, spec);
  // 1100 × 800 is cut into 3 × 2 tiles of 256 tokens + a thumbnail; the fixture stays whole.
  Image big(1100, 800);
  for (size_t i = 0; i < big.pixels.size(); ++i) big.pixels[i] = uint8_t((i * 7 + i / 3300) % 253);
  const int n_img = expect_runtime_features_keep_the_tokens(llm, mmproj, [&](Session& s) {
    s.attach_image_pixels(big);
    s.attach_image(fixture("wide.png"));
  });
  EXPECT_GT(n_img, 6 * 256 + 64);
}

// Gemma 3 (one tile, 4 × 4 average pool, the image read both ways by the gemma3 decoder, whose
// sliding window here is shorter than the image): chunked prefill must keep each image whole.
TEST(Session, Gemma3PairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) {
  const std::string vocab = gpt2_vocab();
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  const std::string dir = ::testing::TempDir();
  const std::string llm = dir + "/gemma3_rt.gguf", mmproj = dir + "/gemma3_rt-mmproj.gguf";
  RandomIdefics3Spec spec;
  spec.vocab_from = vocab;
  spec.image_size = 128;
  spec.patch_size = 4;
  spec.scale_factor = 4;  // 32 × 32 patches → 64 positions
  spec.n_layer = 3;
  spec.sliding_window = 40;
  spec.seed = 3;
  write_random_gemma3vl(llm, mmproj, spec);
  const int n_img = expect_runtime_features_keep_the_tokens(llm, mmproj, [](Session& s) {
    for (const char* p : {"big.png", "wide.png", "tall.png"}) s.attach_image(fixture(p));
  });
  EXPECT_EQ(n_img, 3 * 64);
}

// Qwen2-VL and Qwen2.5-VL (each image at its own size, 2-D RoPE in the ViT, window attention in
// 2.5's, M-RoPE coordinates in the decoder): chunks that cut an image's grid, a cache truncated to
// a checkpoint and the early prefill while typing must all continue its positions.
void expect_qwen2vl_runtime_features(bool qwen25) {
  const std::string vocab = gpt2_vocab();
  if (!std::ifstream(vocab).good()) GTEST_SKIP() << "no GPT-2 vocabulary at " << vocab;
  const std::string dir = ::testing::TempDir();
  const std::string name = qwen25 ? "qwen25vl_rt" : "qwen2vl_rt";
  const std::string llm = dir + "/" + name + ".gguf", mmproj = dir + "/" + name + "-mmproj.gguf";
  RandomIdefics3Spec spec;
  spec.vocab_from = vocab;
  spec.image_size = 64;
  spec.patch_size = 8;  // sides in multiples of 16 px, windows of 14 patches
  spec.n_head_vit = 2;
  spec.seed = 4;
  write_random_qwen2vl(llm, mmproj, spec, qwen25);
  const int n_img = expect_runtime_features_keep_the_tokens(llm, mmproj, [](Session& s) {
    for (const char* p : {"big.png", "wide.png", "tall.png"}) s.attach_image(fixture(p));
  });
  EXPECT_EQ(n_img, 5 * 5 + 9 * 3 + 2 * 6);  // 80 × 80, 144 × 48 and 32 × 96 px
}

TEST(Session, Qwen2VLPairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) { expect_qwen2vl_runtime_features(false); }
TEST(Session, Qwen25VLPairEveryRuntimeFeatureOnOrOffGivesTheSameTokens) { expect_qwen2vl_runtime_features(true); }

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

TEST(Session, BadImageIsRefusedAtOnceAndTheOthersStay) {
  auto sp = open_session(fixture_options());
  Session& s = *sp;
  s.attach_image(fixture("square.png"));
  const std::string bad = ::testing::TempDir() + "/session_not_an_image.png";
  {
    std::ofstream f(bad, std::ios::binary);
    f << "\x89PNG\r\n\x1a\n garbage, not a PNG";
  }
  EXPECT_THROW(s.attach_image(bad), Error);
  try {
    s.attach_image(::testing::TempDir() + "/no_such_file_here.png");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_file_here"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.attach_image_bytes({}, "empty"), Error);
  EXPECT_THROW(s.attach_image_pixels(Image(), "no pixels"), Error);
  EXPECT_EQ(s.pending_images(), 1);
  SessionAnswer a = s.ask("What is it?", greedy(4));
  EXPECT_EQ(a.n_images, 1);
  EXPECT_TRUE(a.image_errors.empty());
}

TEST(Session, ImageFailingInTheBackgroundIsLeftOutAndReported) {
  auto sp = open_session(fixture_options());
  Session& s = *sp;
  // A PNG whose compressed pixels are garbage: the structure check at attach passes (chunks whole,
  // up to IEND), the decode fails in the background.
  std::vector<uint8_t> cut = file_bytes(fixture("square.png"));
  const std::string idat = "IDAT";
  auto at = std::search(cut.begin(), cut.end(), idat.begin(), idat.end());
  ASSERT_NE(at, cut.end());
  ASSERT_GT(cut.end() - at, 40);
  std::fill(at + 4, at + 24, uint8_t(0xff));
  s.attach_image(fixture("square.png"));
  s.attach_image_bytes(cut, "cut.png");
  SessionAnswer a = s.ask("What is it?", greedy(4));
  EXPECT_EQ(a.n_images, 1);
  ASSERT_EQ(a.image_errors.size(), 1u);
  EXPECT_NE(a.image_errors[0].find("cut.png"), std::string::npos) << a.image_errors[0];
  EXPECT_GT(s.n_past(), 0);
}

TEST(Session, ImageFromFileBytesOrPixelsGivesTheSameTokens) {
  auto engine = Engine::load(fixture_options());
  const std::string path = fixture("wide.png");
  std::vector<std::vector<int32_t>> answers;
  for (int way = 0; way < 3; ++way) {
    Session s(engine);
    if (way == 0) s.attach_image(path);
    if (way == 1) s.attach_image_bytes(file_bytes(path), "wide");
    if (way == 2) s.attach_image_pixels(load_image(path), "wide");
    answers.push_back(s.ask("What is it?", greedy(8)).result.tokens);
  }
  ASSERT_GE(answers[0].size(), 2u);
  EXPECT_EQ(answers[1], answers[0]);
  EXPECT_EQ(answers[2], answers[0]);
}

TEST(Session, CancelFromAnotherThreadStopsTheAnswer) {
  auto sp = open_session(fixture_options());
  Session& s = *sp;
  s.cancel();  // nothing runs: no effect on the next answer
  GenerateParams gp = greedy(400);
  gp.stop_at_eog = false;
  std::atomic<int> pieces{0};
  std::atomic<bool> done{false};
  std::thread canceller([&] {
    while (pieces.load() < 3 && !done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.cancel();
  });
  SessionAnswer a = s.ask("Tell me a long story.", gp, [&](std::string_view) {
    pieces.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return true;
  });
  done.store(true);
  canceller.join();
  EXPECT_EQ(a.result.stop_reason, StopReason::Cancelled);
  EXPECT_FALSE(a.result.cancelled_in_prefill);
  EXPECT_LT(a.result.tokens.size(), 100u);
  // The conversation keeps the partial answer and goes on.
  EXPECT_EQ(s.n_past(), a.result.n_prompt + int(a.result.tokens.size()));
  SessionAnswer b = s.ask("Go on.", greedy(3));
  EXPECT_NE(b.result.stop_reason, StopReason::Cancelled);
}

TEST(Session, CancelDuringPrefillDropsTheTurn) {
  auto engine = Engine::load(fixture_options());
  KvCache cache(engine->llm().config(), 256);
  Generator gen(engine->llm(), engine->tokenizer(), cache, engine->pool());
  std::atomic<bool> cancel{true};
  GenerateParams gp = greedy(4);
  gp.cancel = &cancel;
  gp.chunk_size = 4;
  GenerateResult r = gen.generate({1, 5, 6, 7, 8, 9, 10, 11, 12, 13}, gp);
  EXPECT_TRUE(r.cancelled_in_prefill);
  EXPECT_EQ(r.stop_reason, StopReason::Cancelled);
  EXPECT_TRUE(r.tokens.empty());
}

TEST(Session, ConcurrentSessionsOnOneEngineGiveTheirOwnAnswers) {
  auto engine = Engine::load(fixture_options());
  const std::vector<std::string> images = {fixture("square.png"), fixture("tall.png")};
  std::vector<std::vector<int32_t>> alone;
  for (const auto& img : images) {
    Session s(engine);
    s.attach_image(img);
    alone.push_back(s.ask("What is it?", greedy(8)).result.tokens);
  }
  std::vector<std::vector<int32_t>> together(images.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < images.size(); ++i)
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 2; ++rep) {
        Session s(engine);
        s.attach_image(images[i]);
        together[i] = s.ask("What is it?", greedy(8)).result.tokens;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(together, alone);
}

// LFM2's convolution state has no history, so a turn that fails or is cancelled during its prefill
// must be rolled back by checkpoint, not by truncating: the conversation goes on as if it never
// happened (the same tokens as a session that never saw it).
TEST(Session, FailedOrCancelledTurnLeavesAnLfm2ConversationIntact) {
  const std::string path = ::testing::TempDir() + "/session_lfm2.gguf";
  RandomLlamaSpec spec;
  spec.arch = "lfm2";
  spec.n_embd = 64, spec.n_layer = 3, spec.n_head = 4, spec.n_head_kv = 2, spec.n_ff = 128, spec.n_ctx = 256;
  spec.attn_layers = {1};
  spec.tied_output = true;
  spec.vocab_from = fixture("tiny.gguf");
  write_random_llama(path, spec);
  EngineOptions o;
  o.model_path = path;
  o.threads = 2;
  o.n_ctx = 96;
  auto engine = Engine::load(o);

  Session plain(engine);
  plain.ask("Hello there.", greedy(4));
  const std::vector<int32_t> want = plain.ask("And then?", greedy(6)).result.tokens;

  Session s(engine);
  s.ask("Hello there.", greedy(4));
  const int n_past = s.n_past();
  EXPECT_THROW(s.ask(std::string(400, 'x'), greedy(4)), Error);  // does not fit the context
  EXPECT_EQ(s.n_past(), n_past);
  std::atomic<bool> stop{true};
  GenerateParams cancelled = greedy(4);
  cancelled.chunk_size = 2;
  std::thread canceller([&] {
    while (stop.load()) s.cancel();
  });
  SessionAnswer c = s.ask("the cat sat on the mat the cat sat on the mat", cancelled);
  stop.store(false);
  canceller.join();
  if (c.result.cancelled_in_prefill) EXPECT_EQ(s.n_past(), n_past);
  if (s.n_past() == n_past) EXPECT_EQ(s.ask("And then?", greedy(6)).result.tokens, want);
}

// Prefill while typing: the turn's text up to its last image is in the cache before ask(); the
// answers are those of the plain path, over several turns and templates, and ask() falls back (and
// says why) when the question places its images itself.
TEST(Session, PrefillWhileTypingGivesTheSameTokens) {
  for (const char* tmpl : {"chatml", "llama3", "none"}) {
    SCOPED_TRACE(tmpl);
    EngineOptions o = fixture_options();
    o.chat_template = tmpl;
    auto engine = Engine::load(o);
    SessionOptions on, off;
    on.system_prompt = off.system_prompt = "Be brief.";
    off.prefill_while_typing = false;
    Session a(engine, on), b(engine, off);
    struct Turn {
      std::vector<std::string> images;
      std::string question;
    };
    const std::vector<Turn> turns = {{{"square.png", "wide.png"}, "What are they?"},
                                     {{}, "And the colour?"},
                                     {{"tall.png"}, "And this one?"},
                                     {{"big.png"}, "Compare <image> with the first."}};
    for (size_t i = 0; i < turns.size(); ++i) {
      SCOPED_TRACE(i);
      for (const auto& img : turns[i].images) {
        a.attach_image(fixture(img));
        b.attach_image(fixture(img));
      }
      // Typing: the background prefill finishes before the question comes.
      for (int w = 0; w < 500 && !turns[i].images.empty(); ++w)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      const SessionAnswer x = a.ask(turns[i].question, greedy(6));
      const SessionAnswer y = b.ask(turns[i].question, greedy(6));
      EXPECT_EQ(x.result.tokens, y.result.tokens);
      EXPECT_EQ(x.n_positions, y.n_positions);
      EXPECT_EQ(a.n_past(), b.n_past());
      EXPECT_EQ(y.n_prefilled_while_typing, 0);
      if (i == 3) {
        EXPECT_EQ(x.n_prefilled_while_typing, 0);
        EXPECT_NE(x.prefill_note.find("places its images"), std::string::npos) << x.prefill_note;
      } else if (!turns[i].images.empty()) {
        EXPECT_GT(x.n_prefilled_while_typing, x.n_image_positions - 1) << x.prefill_note;
        EXPECT_LT(x.result.n_prompt, y.result.n_prompt);  // only the question was left for ask()
      }
    }
  }
}

TEST(Session, DestroyMidEncodeDoesNotHang) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 3; ++rep) {
    auto s = open_session(fixture_options());
    for (int i = 0; i < 5; ++i) s->attach_image(fixture("big.png"));
    // destroyed with one encode running and four queued
  }
  {
    auto sp = open_session(fixture_options());
    Session& s = *sp;
    s.attach_image(fixture("big.png"));
    s.reset();  // drops the image; the running encode finishes into nothing
    SessionAnswer a = s.ask("Hello", greedy(3));
    EXPECT_EQ(a.n_images, 0);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
}

TEST(Session, MultiTurnKeepsTheCache) {
  auto sp = open_session(fixture_options());
  Session& s = *sp;
  EXPECT_EQ(s.kv_type(), kDefaultKvType);
  s.attach_image(fixture("square.png"));
  SessionAnswer a1 = s.ask("What is it?", greedy(6));
  const int after1 = s.n_past();
  EXPECT_EQ(after1, a1.n_positions + int(a1.result.tokens.size()));
  SessionAnswer a2 = s.ask("And the colour?", greedy(6));
  EXPECT_EQ(a2.n_images, 0);
  // the second turn prefilled only its own text, on top of the first
  EXPECT_EQ(s.n_past(), after1 + a2.n_positions + int(a2.result.tokens.size()));
  EXPECT_LT(a2.n_positions, a1.n_positions);
  s.reset();
  EXPECT_EQ(s.n_past(), 0);
}

TEST(Session, ImagesInLaterTurnsAndOtherTemplates) {
  for (const char* tmpl : {"chatml", "llama3", "none"}) {
    SCOPED_TRACE(tmpl);
    EngineOptions o = fixture_options();
    o.chat_template = tmpl;
    SessionOptions so;
    so.system_prompt = "Be brief.";
    auto sp = open_session(o, so);
    Session& s = *sp;
    s.attach_image(fixture("square.png"));
    SessionAnswer a1 = s.ask("What is it?", greedy(5));
    const int after1 = s.n_past();
    s.attach_image(fixture("tall.png"));
    SessionAnswer a2 = s.ask("Compare <image> with the first.", greedy(5));
    EXPECT_EQ(a1.n_images, 1);
    EXPECT_EQ(a2.n_images, 1);
    EXPECT_GT(a2.n_tiles, 0);
    EXPECT_EQ(s.n_past(), after1 + a2.n_positions + int(a2.result.tokens.size()));
  }
}

bool mapped(const std::string& file_name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(file_name) != std::string::npos) return true;
  return false;
}

TEST(Session, LowMemoryUnmapsTheVisionModelOutsideEncodes) {
  if (!std::ifstream("/proc/self/maps")) GTEST_SKIP() << "no /proc/self/maps";
  {
    auto sp = open_session(fixture_options(false));
    Session& s = *sp;
    s.attach_image(fixture("square.png"));
    s.ask("What is it?", greedy(2));
    EXPECT_TRUE(mapped("tiny-mmproj.gguf"));  // resident for the session's life
  }
  auto sp = open_session(fixture_options(true));
  Session& s = *sp;
  EXPECT_FALSE(mapped("tiny-mmproj.gguf"));
  s.attach_image(fixture("square.png"));
  SessionAnswer a = s.ask("What is it?", greedy(2));
  EXPECT_EQ(a.n_tiles, 1);
  EXPECT_FALSE(mapped("tiny-mmproj.gguf"));
  EXPECT_TRUE(mapped("tiny.gguf"));
}

// Resident kB of the mappings of file_name (/proc/self/smaps), -1 when not mapped.
long resident_kb(const std::string& file_name) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  long kb = -1;
  bool in = false;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 16) {
      in = line.find(file_name) != std::string::npos;
      if (in && kb < 0) kb = 0;
    } else if (in && line.rfind("Rss:", 0) == 0) {
      kb += std::stol(line.substr(4));
    }
  }
  return kb;
}

TEST(Session, LowMemoryDropsTheLlmPagesForAnEncode) {
  if (!std::ifstream("/proc/self/smaps")) GTEST_SKIP() << "no /proc/self/smaps";
  // Without prefill while typing: it would page the weights back in right after the encode.
  SessionOptions so;
  so.prefill_while_typing = false;
  auto sp = open_session(fixture_options(true), so);
  Session& s = *sp;
  s.attach_image(fixture("square.png"));
  s.ask("What is it?", greedy(2));
  const long before = resident_kb("tiny.gguf");
  ASSERT_GT(before, 8);  // the turn paged the weights in
  s.attach_image(fixture("square.png"));
  // The background encode drops the pages before it starts; nothing touches them until ask().
  long now = before;
  for (int i = 0; i < 500 && now > before / 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now = resident_kb("tiny.gguf");
  }
  EXPECT_LE(now, before / 4) << "resident before " << before << " kB";
  s.ask("And now?", greedy(2));
  EXPECT_GT(resident_kb("tiny.gguf"), now);
}

TEST(Session, MismatchedPairIsAnError) {
  EngineOptions o = fixture_options();
  o.mmproj_path = fixture("tiny.gguf");  // an LLM file where the mmproj should be
  EXPECT_THROW(Engine::load(o), Error);
}

}  // namespace
}  // namespace edgevlm

namespace edgevlm {
namespace {

// A conversation replayed from its text (what an API client resends) continues as the one that
// produced it: same cache length and same next answer, whenever the answer's text tokenizes back
// to the tokens generated (otherwise the cache holds the text's own tokens, as llama.cpp's would).
TEST(Session, AddExchangeReplaysAConversation) {
  auto engine = Engine::load(fixture_options());
  Session live(engine), replay(engine);
  live.attach_image(fixture("wide.png"));
  SessionAnswer a1 = live.ask("What is it?", greedy(8));
  const std::vector<int32_t> retok = engine->tokenizer().encode(a1.result.text, false, false);
  SessionAnswer a2 = live.ask("And then?", greedy(8));

  // The replayed image comes as embeddings made elsewhere (the server's cache).
  auto emb = std::make_shared<const ImageEmbeddings>(engine->encode(load_image(fixture("wide.png"))));
  std::promise<std::shared_ptr<const ImageEmbeddings>> ready;
  ready.set_value(emb);
  replay.attach_image_embeddings(ready.get_future().share(), "wide");
  SessionAnswer r1 = replay.add_exchange("What is it?", a1.result.text);
  EXPECT_EQ(r1.n_images, 1);
  EXPECT_EQ(r1.result.text, a1.result.text);
  EXPECT_EQ(r1.result.n_prompt, a1.n_positions + int(retok.size()));
  SessionAnswer r2 = replay.ask("And then?", greedy(8));
  if (retok == a1.result.tokens) {
    EXPECT_EQ(replay.n_past(), live.n_past());
    EXPECT_EQ(r2.result.tokens, a2.result.tokens);
  }
  EXPECT_EQ(r2.n_positions, a2.n_positions);
}

TEST(Session, AddExchangeThatDoesNotFitLeavesTheSessionAsItWas) {
  EngineOptions o = fixture_options();
  o.n_ctx = 64;
  auto engine = Engine::load(o);
  Session s(engine);
  EXPECT_THROW(s.add_exchange("hi", std::string(400, 'a')), Error);
  EXPECT_EQ(s.n_past(), 0);
  SessionAnswer a = s.ask("hi", greedy(2));
  EXPECT_GT(s.n_past(), 0);
  (void)a;
}

}  // namespace
}  // namespace edgevlm
