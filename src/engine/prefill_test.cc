// Chunked prefill must be invisible in the results: chunk sizes 1, 3 and 128 give the logits
// (≤ 1e-4 relative) and greedy continuations of one unchunked forward pass. The wider Q4_0 model's
// matrices are large enough for the cached layouts, so where the CPU has AMX its products run
// there, for chunks of one row too (PromptRowsScope); without AMX its one-row products run the
// decode tile, which must sum in the order of the many-row tiles (a last-bit difference flipped a
// later layer's 8-bit rounding of the activations, 1% of the largest logit).
#include "engine/prefill.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/llm_test_util.h"

namespace edgevlm {
namespace {

int argmax(const std::vector<float>& v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

// Greedy continuation of n tokens after the prefill left `logits`.
std::vector<int> greedy(const LlmModel& m, KvCache& cache, std::vector<float> logits, int n, ThreadPool& pool) {
  std::vector<int> out;
  std::vector<float> emb(size_t(m.config().n_embd));
  for (int i = 0; i < n; ++i) {
    int32_t tok = argmax(logits);
    out.push_back(tok);
    m.embed_tokens(&tok, 1, emb.data());
    llm_forward(m, cache, emb.data(), 1, logits.data(), false, pool);
  }
  return out;
}

TEST(PrefillChunked, SameLogitsAndTokensAsUnchunked) {
  ThreadPool pool(2);
  struct Case {
    const char* arch;
    GGMLType wt;
    int n_embd;
    std::vector<int> chunks;
  };
  for (const auto& [arch, wt, n_embd, chunks] :
       {Case{"llama", GGMLType::F32, 32, {1, 3, 128}}, Case{"qwen2", GGMLType::Q4_0, 32, {1, 3, 128}},
        Case{"llama", GGMLType::Q8_0, 32, {1, 3, 128}}, Case{"llama", GGMLType::Q4_0, 256, {1, 3, 128}}}) {
    SCOPED_TRACE(std::string(arch) + " " + type_name(wt) + " width " + std::to_string(n_embd));
    testing::TinySpec s;
    s.arch = arch;
    s.wtype = wt;
    s.qkv_bias = s.arch == std::string("qwen2");
    s.n_embd = n_embd;
    s.n_head = 2;
    s.n_head_kv = 1;
    s.n_ff = 2 * n_embd;
    auto tm = testing::make_tiny_model(s);
    const LlmModel& m = *tm.model;
    const int n = 150;  // more than one chunk of 128
    std::vector<int32_t> toks(n);
    for (int i = 0; i < n; ++i) toks[size_t(i)] = int32_t((i * 37 + 11) % m.config().n_vocab);
    std::vector<float> emb(size_t(n) * m.config().n_embd);
    m.embed_tokens(toks.data(), n, emb.data());

    KvCache c_full(m.config(), 180);
    std::vector<float> full(size_t(m.config().n_vocab));
    llm_forward(m, c_full, emb.data(), n, full.data(), false, pool);
    std::vector<int> want = greedy(m, c_full, full, 8, pool);
    float scale = 0;
    for (float v : full) scale = std::max(scale, std::fabs(v));

    for (int chunk : chunks) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      KvCache cache(m.config(), 180);
      std::vector<float> got = prefill_chunked(m, cache, emb.data(), n, chunk, pool);
      EXPECT_EQ(cache.n_past(), n);
      ASSERT_EQ(got.size(), full.size());
      for (size_t v = 0; v < got.size(); ++v) ASSERT_NEAR(got[v], full[v], 1e-4f * scale) << "logit " << v;
      EXPECT_EQ(greedy(m, cache, got, 8, pool), want);
    }
  }
}

// Bidirectional spans (a Gemma 3 image) go through whole whatever the chunk size: every chunking
// gives the logits of one forward pass with the same spans, and those differ from causal ones.
TEST(PrefillChunked, BidirectionalSpansAreNeverCut) {
  ThreadPool pool(2);
  testing::TinySpec s;
  s.n_head = 2;
  s.n_head_kv = 1;
  auto tm = testing::make_tiny_model(s);
  const LlmModel& m = *tm.model;
  const int n = 40;
  std::vector<int32_t> toks(n);
  for (int i = 0; i < n; ++i) toks[size_t(i)] = int32_t((i * 29 + 5) % m.config().n_vocab);
  std::vector<float> emb(size_t(n) * m.config().n_embd);
  m.embed_tokens(toks.data(), n, emb.data());
  const std::vector<PositionSpan> spans = {{3, 12, true}, {12, 15, true}, {20, 37, true}};
  // Reference: one forward pass per stretch, each span alone with what precedes it.
  KvCache ref(m.config(), 64);
  std::vector<float> want(size_t(m.config().n_vocab));
  int done = 0;
  for (const PositionSpan& sp : spans) {
    if (sp.begin > done) llm_forward(m, ref, emb.data() + size_t(done) * m.config().n_embd, sp.begin - done, nullptr, false, pool);
    llm_forward(m, ref, emb.data() + size_t(sp.begin) * m.config().n_embd, sp.end - sp.begin, nullptr, false, pool, {sp});
    done = sp.end;
  }
  llm_forward(m, ref, emb.data() + size_t(done) * m.config().n_embd, n - done, want.data(), false, pool);
  float scale = 0;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  for (int chunk : {1, 4, 10, 128}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    KvCache cache(m.config(), 64);
    const std::vector<float> got = prefill_chunked(m, cache, emb.data(), n, chunk, pool, nullptr, spans);
    EXPECT_EQ(cache.n_past(), n);
    for (size_t v = 0; v < got.size(); ++v) ASSERT_NEAR(got[v], want[v], 1e-4f * scale) << "logit " << v;
  }
  KvCache causal(m.config(), 64);
  const std::vector<float> c = prefill_chunked(m, causal, emb.data(), n, 128, pool);
  float diff = 0;
  for (size_t v = 0; v < c.size(); ++v) diff = std::max(diff, std::fabs(c[v] - want[v]));
  EXPECT_GT(diff, 1e-3f * scale);  // the spans change the answer
  KvCache bad(m.config(), 64);
  EXPECT_THROW(prefill_chunked(m, bad, emb.data(), n, 8, pool, nullptr, {{30, 50, true}}), Error);
}

TEST(PrefillChunked, TooLongPromptNamesBothNumbers) {
  ThreadPool pool(1);
  auto tm = testing::make_tiny_model(testing::TinySpec());
  const LlmModel& m = *tm.model;
  KvCache cache(m.config(), 20);
  std::vector<float> emb(size_t(30) * m.config().n_embd, 0.05f);
  prefill_chunked(m, cache, emb.data(), 7, 4, pool);
  try {
    prefill_chunked(m, cache, emb.data(), 14, 4, pool);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("14"), std::string::npos) << msg;
    EXPECT_NE(msg.find("20"), std::string::npos) << msg;
  }
  EXPECT_EQ(cache.n_past(), 7);  // nothing was written past the check
  EXPECT_THROW(prefill_chunked(m, cache, emb.data(), 3, 0, pool), Error);
  EXPECT_THROW(prefill_chunked(m, cache, emb.data(), 0, 4, pool), Error);
  std::vector<float> ok = prefill_chunked(m, cache, emb.data(), 13, 4, pool);  // exactly fills 20
  EXPECT_EQ(cache.n_past(), 20);
  EXPECT_EQ(int(ok.size()), m.config().n_vocab);
}

}  // namespace
}  // namespace edgevlm
