#include "engine/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/prefill.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "engine/tiny_model_for_tests.h"

namespace edgevlm {
namespace {

// ---------------------------------------------------------------------------------------------
// StopStringMatcher on its own.

std::string feed_all(StopStringMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.flush();
  return out;
}

TEST(StopStringMatcherTest, PassesTextThroughWithoutStops) {
  StopStringMatcher m({});
  EXPECT_EQ(feed_all(m, {"Hello", ", ", "world"}), "Hello, world");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, StopInsideOnePiece) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("abcSTOPdef"), "abc");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "STOP");
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStringMatcherTest, StopSpanningPiecesIsNeverEmitted) {
  StopStringMatcher m({"</answer>"});
  std::string out;
  out += m.push("The cat</");   // "</" could begin the stop string: held back
  EXPECT_EQ(out, "The cat");
  out += m.push("ans");
  EXPECT_EQ(out, "The cat");
  out += m.push("wer> trailing");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "The cat");
}

TEST(StopStringMatcherTest, FalseStartIsReleased) {
  StopStringMatcher m({"###"});
  std::string out;
  out += m.push("a#");
  EXPECT_EQ(out, "a");
  out += m.push("#b");  // "##b" cannot become "###": all of it goes out
  EXPECT_EQ(out, "a##b");
  out += m.push("##");
  EXPECT_EQ(out, "a##b");
  out += m.flush();  // stream ended without the third '#'
  EXPECT_EQ(out, "a##b##");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, EarliestOfSeveralStopsWins) {
  StopStringMatcher m({"world", "lo w"});
  EXPECT_EQ(feed_all(m, {"hel", "lo", " wor", "ld"}), "hel");
  EXPECT_EQ(m.matched(), "lo w");
}

TEST(StopStringMatcherTest, OverlappingPrefixes) {
  // "aab" after "aa a": the held tail must be the longest one that could still match.
  StopStringMatcher m({"aab"});
  EXPECT_EQ(feed_all(m, {"xa", "a", "a", "b", "tail"}), "xa");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcherTest, Utf8IsCutOnlyAtCharacterBoundaries) {
  StopStringMatcher m({"€x"});
  std::string out = m.push("a€");  // "€" may start the stop string
  EXPECT_EQ(out, "a");
  out += m.push("y");
  EXPECT_EQ(out, "a€y");
}

TEST(StopStringMatcherTest, EmptyStopStringsAreIgnored) {
  StopStringMatcher m({""});
  EXPECT_EQ(feed_all(m, {"abc"}), "abc");
  EXPECT_FALSE(m.stopped());
}

// ---------------------------------------------------------------------------------------------
// Generator over the tiny model of tiny_model_for_tests.h.

using namespace testing_tiny;

int argmax(const float* v, int n) {
  return static_cast<int>(std::max_element(v, v + n) - v);
}

// Greedy decoding written straight against llm_forward, unchunked: what Generator must match.
std::vector<int32_t> reference_greedy(const TinyModel& m, const std::vector<int32_t>& prompt, int n,
                                      ThreadPool& pool) {
  const LlmConfig& c = m.model->config();
  KvCache cache(c, kCtx);
  std::vector<float> emb(prompt.size() * c.n_embd), logits(c.n_vocab);
  m.model->embed_tokens(prompt.data(), static_cast<int>(prompt.size()), emb.data());
  llm_forward(*m.model, cache, emb.data(), static_cast<int>(prompt.size()), logits.data(), false, pool);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t id = argmax(logits.data(), c.n_vocab);
    out.push_back(id);
    m.model->embed_tokens(&id, 1, emb.data());
    llm_forward(*m.model, cache, emb.data(), 1, logits.data(), false, pool);
  }
  return out;
}

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = make_tiny_model();
    prompt_ = m_->tok->encode("the cat sat on the mat", true, false);
    ASSERT_GE(prompt_.size(), 3u);
  }
  GenerateParams greedy(int n) {
    GenerateParams p;
    p.n_predict = n;
    p.stop_at_eog = false;  // random weights: EOS may come at any time
    return p;
  }
  std::string pieces(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += m_->tok->token_to_piece(id);
    return s;
  }

  ThreadPool pool_{2};
  std::unique_ptr<TinyModel> m_;
  std::vector<int32_t> prompt_;
};

TEST_F(GeneratorTest, GreedyMatchesAHandWrittenDecodeLoop) {
  const int n = 12;
  auto ref = reference_greedy(*m_, prompt_, n, pool_);
  KvCache cache(m_->model->config(), kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  GenerateResult r = g.generate(prompt_, greedy(n));
  EXPECT_EQ(r.tokens, ref);
  EXPECT_EQ(r.stop_reason, StopReason::MaxTokens);
  EXPECT_EQ(r.n_prompt, static_cast<int>(prompt_.size()));
  EXPECT_EQ(r.n_decode, n);
  EXPECT_EQ(cache.n_past(), static_cast<int>(prompt_.size()) + n);  // prompt + every token kept
  EXPECT_GT(r.prefill_ms, 0);
  EXPECT_GT(r.decode_tok_s(), 0);
}

TEST_F(GeneratorTest, ChunkSizeDoesNotChangeTheTokens) {
  std::vector<int32_t> first;
  for (int chunk : {1, 2, 3, 128}) {
    KvCache cache(m_->model->config(), kCtx);
    Generator g(*m_->model, *m_->tok, cache, pool_);
    GenerateParams p = greedy(10);
    p.chunk_size = chunk;
    auto r = g.generate(prompt_, p);
    if (first.empty()) first = r.tokens;
    EXPECT_EQ(r.tokens, first) << "chunk " << chunk;
  }
}

TEST_F(GeneratorTest, StreamedTextIsThePiecesOfTheTokens) {
  KvCache cache(m_->model->config(), kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  std::string streamed;
  int calls = 0;
  auto r = g.generate(prompt_, greedy(16), [&](std::string_view t) {
    streamed += t;
    ++calls;
    EXPECT_FALSE(t.empty());
    return true;
  });
  EXPECT_EQ(streamed, r.text);
  // Special tokens (<unk>, <|im_end|> past EOG...) are not streamed unless emit_special.
  std::vector<int32_t> plain;
  for (int32_t id : r.tokens)
    if (!m_->tok->is_special(id)) plain.push_back(id);
  EXPECT_EQ(r.text, pieces(plain));
  EXPECT_GT(calls, 0);
}

TEST_F(GeneratorTest, FirstLogitsAreThePrefillLogits) {
  const LlmConfig& c = m_->model->config();
  KvCache ref_cache(c, kCtx);
  std::vector<float> emb(prompt_.size() * c.n_embd);
  m_->model->embed_tokens(prompt_.data(), static_cast<int>(prompt_.size()), emb.data());
  auto ref = prefill_chunked(*m_->model, ref_cache, emb.data(), static_cast<int>(prompt_.size()), 128, pool_);

  KvCache cache(c, kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  GenerateParams p = greedy(1);
  p.keep_first_logits = true;
  auto r = g.generate(prompt_, p);
  ASSERT_EQ(static_cast<int>(r.first_logits.size()), c.n_vocab);
  for (int i = 0; i < c.n_vocab; ++i) EXPECT_FLOAT_EQ(r.first_logits[i], ref[i]) << i;
  EXPECT_EQ(r.tokens[0], argmax(r.first_logits.data(), c.n_vocab));
}

TEST_F(GeneratorTest, StopsAtEndOfGenerationToken) {
  auto ref = reference_greedy(*m_, prompt_, 6, pool_);
  // Pick the first greedy token not seen before position 2 as "EOS" in an otherwise identical model.
  int k = -1;
  for (int i = 2; i < 6 && k < 0; ++i)
    if (std::find(ref.begin(), ref.begin() + i, ref[i]) == ref.begin() + i) k = i;
  if (k < 0) GTEST_SKIP() << "greedy sequence repeats one token; no distinct EOS candidate";
  auto m2 = make_tiny_model(/*eos_id=*/ref[k]);
  ASSERT_TRUE(m2->tok->is_end_of_generation(ref[k]));
  KvCache cache(m2->model->config(), kCtx);
  Generator g(*m2->model, *m2->tok, cache, pool_);
  GenerateParams p = greedy(6);
  p.stop_at_eog = true;
  auto r = g.generate(prompt_, p);
  EXPECT_EQ(r.stop_reason, StopReason::EndOfGeneration);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + k));  // EOS itself not kept
  EXPECT_EQ(cache.n_past(), static_cast<int>(prompt_.size()) + k);
}

TEST_F(GeneratorTest, StopStringAcrossTokensIsNotEmitted) {
  const int n = 16;
  auto ref = reference_greedy(*m_, prompt_, n, pool_);
  // A stop string made of the last byte of one token's text and the first of the next.
  std::string full;
  size_t boundary = 0;
  for (int i = 0; i < n; ++i) {
    std::string piece = m_->tok->token_to_piece(ref[i]);
    if (boundary == 0 && i >= 1 && !full.empty() && !piece.empty() &&
        static_cast<unsigned char>(full.back()) < 0x80 && static_cast<unsigned char>(piece[0]) < 0x80)
      boundary = full.size();
    full += piece;
  }
  if (boundary == 0) GTEST_SKIP() << "no ASCII token boundary in the greedy text";
  const std::string stop = full.substr(boundary - 1, 2);
  const size_t pos = full.find(stop);

  KvCache cache(m_->model->config(), kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  GenerateParams p = greedy(n);
  p.stop_strings = {stop};
  std::string streamed;
  auto r = g.generate(prompt_, p, [&](std::string_view t) {
    streamed += t;
    return true;
  });
  EXPECT_EQ(r.stop_reason, StopReason::StopString);
  EXPECT_EQ(r.stop_string, stop);
  EXPECT_EQ(r.text, full.substr(0, pos));
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.text.find(stop), std::string::npos);
  // Generation ends at the token that completed the stop string, a prefix of the greedy run.
  ASSERT_LE(r.tokens.size(), ref.size());
  EXPECT_TRUE(std::equal(r.tokens.begin(), r.tokens.end(), ref.begin()));
  EXPECT_GE(pieces(r.tokens).size(), pos + stop.size());
  EXPECT_LT(pieces(std::vector<int32_t>(r.tokens.begin(), r.tokens.end() - 1)).size(), pos + stop.size());
}

TEST_F(GeneratorTest, CallbackCanStopGeneration) {
  KvCache cache(m_->model->config(), kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  int calls = 0;
  auto r = g.generate(prompt_, greedy(20), [&](std::string_view) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.stop_reason, StopReason::Callback);
  EXPECT_LT(r.tokens.size(), 20u);
}

TEST_F(GeneratorTest, SeededSamplingIsReproducible) {
  auto run = [&](uint64_t seed) {
    KvCache cache(m_->model->config(), kCtx);
    Generator g(*m_->model, *m_->tok, cache, pool_);
    GenerateParams p = greedy(20);
    p.sampler.temperature = 1.5f;
    p.sampler.top_k = 0;
    p.sampler.top_p = 1.0f;
    p.sampler.min_p = 0.0f;
    p.sampler.seed = seed;
    return g.generate(prompt_, p).tokens;
  };
  auto a = run(123);
  EXPECT_EQ(a, run(123));
  EXPECT_NE(a, run(124));
}

TEST_F(GeneratorTest, FromEmbeddingsMatchesFromTokens) {
  const LlmConfig& c = m_->model->config();
  std::vector<float> emb(prompt_.size() * c.n_embd);
  m_->model->embed_tokens(prompt_.data(), static_cast<int>(prompt_.size()), emb.data());
  KvCache c1(c, kCtx), c2(c, kCtx);
  Generator g1(*m_->model, *m_->tok, c1, pool_), g2(*m_->model, *m_->tok, c2, pool_);
  auto a = g1.generate(prompt_, greedy(8));
  auto b = g2.generate_from_embeddings(emb.data(), static_cast<int>(prompt_.size()), greedy(8));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text, b.text);
}

TEST_F(GeneratorTest, ContinuesWhereTheCacheLeftOff) {
  // Two calls on one cache = one call over the concatenated prompt.
  KvCache cache(m_->model->config(), kCtx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  auto first = g.generate(prompt_, greedy(4));
  std::vector<int32_t> more = {m_->tok->find_token("\xe2\x96\x81" "dog")};
  ASSERT_GE(more[0], 0);
  auto second = g.generate(more, greedy(5));

  std::vector<int32_t> whole = prompt_;
  whole.insert(whole.end(), first.tokens.begin(), first.tokens.end());
  whole.push_back(more[0]);
  EXPECT_EQ(second.tokens, reference_greedy(*m_, whole, 5, pool_));
}

TEST_F(GeneratorTest, FillsTheContextWhenAskedForAllOfIt) {
  KvCache cache(m_->model->config(), 24);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  auto r = g.generate(prompt_, greedy(-1));
  EXPECT_EQ(r.stop_reason, StopReason::ContextFull);
  EXPECT_EQ(static_cast<int>(r.tokens.size()), 24 - static_cast<int>(prompt_.size()));
  EXPECT_EQ(cache.n_past(), 24);
}

TEST_F(GeneratorTest, BadInputIsAnErrorNotACrash) {
  const int ctx = static_cast<int>(prompt_.size()) + 8;
  KvCache cache(m_->model->config(), ctx);
  Generator g(*m_->model, *m_->tok, cache, pool_);
  EXPECT_THROW(g.generate({}, greedy(4)), Error);
  EXPECT_THROW(g.generate({1, 99999}, greedy(4)), Error);
  EXPECT_THROW(g.generate({1, -3}, greedy(4)), Error);
  std::vector<int32_t> too_long(ctx + 1, 5);
  EXPECT_THROW(g.generate(too_long, greedy(1)), Error);
  try {
    g.generate(prompt_, greedy(9));  // fits alone, not with 9 new tokens
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceed"), std::string::npos) << e.what();
  }
  GenerateParams bad_chunk = greedy(2);
  bad_chunk.chunk_size = 0;
  EXPECT_THROW(g.generate(prompt_, bad_chunk), Error);
  EXPECT_EQ(cache.n_past(), 0);  // nothing was prefilled by the failed calls
  auto r = g.generate(prompt_, greedy(2));  // and the generator still works
  EXPECT_EQ(r.tokens.size(), 2u);
}

}  // namespace
}  // namespace edgevlm
