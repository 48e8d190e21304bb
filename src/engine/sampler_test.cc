#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"

namespace edgevlm {
namespace {

std::vector<float> random_logits(int n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

int argmax(const std::vector<float>& v) {
  int best = 0;
  for (int i = 1; i < (int)v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

// Logits whose softmax at T=1 is exactly `probs`.
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::map<int, int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::map<int, int> h;
  for (int i = 0; i < draws; ++i) h[s.sample(logits.data(), (int)logits.size())]++;
  return h;
}

TEST(SamplerTest, GreedyIsArgmax) {
  SamplerParams p;  // temperature 0 by default
  Sampler s(p);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    auto l = random_logits(1000, seed);
    EXPECT_EQ(s.sample(l.data(), 1000), argmax(l)) << "seed " << seed;
  }
}

TEST(SamplerTest, GreedyTieGoesToLowestId) {
  std::vector<float> l = {0.0f, 5.0f, 1.0f, 5.0f};
  Sampler s(SamplerParams{});
  EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(SamplerTest, TopK1IsGreedyAtAnyTemperature) {
  for (float temp : {0.5f, 1.0f, 2.0f, 10.0f}) {
    SamplerParams p;
    p.temperature = temp;
    p.top_k = 1;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 7;
    Sampler s(p);
    for (uint64_t seed = 1; seed <= 30; ++seed) {
      auto l = random_logits(500, seed);
      EXPECT_EQ(s.sample(l.data(), 500), argmax(l)) << "temp " << temp << " seed " << seed;
    }
  }
}

TEST(SamplerTest, TopKRestrictsToKLargest) {
  // Nearly flat logits: without top-k every token would appear in 4000 draws.
  std::vector<float> l = {1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 3;
  Sampler s(p);
  auto h = histogram(s, l, 4000);
  EXPECT_EQ(h.size(), 3u);
  for (auto& [id, n] : h) EXPECT_GE(id, 5);
}

TEST(SamplerTest, TopPExcludesTheTail) {
  // p = .5 .3 .1 .06 .04: top-p 0.85 keeps {0,1,2} (cumulative .5, .8, .9 >= .85).
  auto l = logits_for({0.5, 0.3, 0.1, 0.06, 0.04});
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.85f;
  p.min_p = 0.0f;
  p.seed = 11;
  Sampler s(p);
  const int draws = 20000;
  auto h = histogram(s, l, draws);
  EXPECT_EQ(h.count(3), 0u);
  EXPECT_EQ(h.count(4), 0u);
  // Survivors renormalised: .5/.9, .3/.9, .1/.9. Tolerance ~5 standard deviations.
  EXPECT_NEAR(h[0] / double(draws), 0.5 / 0.9, 0.02);
  EXPECT_NEAR(h[1] / double(draws), 0.3 / 0.9, 0.02);
  EXPECT_NEAR(h[2] / double(draws), 0.1 / 0.9, 0.012);
}

TEST(SamplerTest, MinPExcludesUnlikelyTokens) {
  // min-p 0.2 of p_max .4 → threshold .08: token 3 (.05) and 4 (.05) go, 2 (.1) stays.
  auto l = logits_for({0.4, 0.4, 0.1, 0.05, 0.05});
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.2f;
  p.seed = 5;
  Sampler s(p);
  const int draws = 20000;
  auto h = histogram(s, l, draws);
  EXPECT_EQ(h.count(3), 0u);
  EXPECT_EQ(h.count(4), 0u);
  EXPECT_NEAR(h[2] / double(draws), 0.1 / 0.9, 0.012);
  EXPECT_NEAR(h[0] / double(draws), 0.4 / 0.9, 0.02);
}

// The filters written the obvious way (full sort, then cut), to check the lazily sorted ones.
std::vector<std::pair<int32_t, double>> reference_survivors(const std::vector<float>& l, const SamplerParams& p) {
  std::vector<int32_t> ids(l.size());
  for (size_t i = 0; i < l.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  if (p.top_k > 0 && p.top_k < (int)ids.size()) ids.resize(p.top_k);
  auto probs = [&](double inv_t) {
    std::vector<double> pr;
    double sum = 0;
    for (int32_t id : ids) sum += std::exp((l[id] - l[ids[0]]) * inv_t);
    for (int32_t id : ids) pr.push_back(std::exp((l[id] - l[ids[0]]) * inv_t) / sum);
    return pr;
  };
  auto pr = probs(1.0);
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t keep = ids.size();
    for (size_t i = 0; i < ids.size(); ++i)
      if ((cum += pr[i]) >= p.top_p) {
        keep = i + 1;
        break;
      }
    ids.resize(keep);
    pr.resize(keep);
  }
  if (p.min_p > 0.0f) {
    size_t keep = 1;
    while (keep < ids.size() && pr[keep] >= p.min_p * pr[0]) ++keep;
    ids.resize(keep);
  }
  pr = probs(1.0 / p.temperature);
  std::vector<std::pair<int32_t, double>> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back({ids[i], pr[i]});
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SamplerTest, FiltersMatchAFullSortReference) {
  // Large, fairly flat vocabularies push top-p past the first sorted blocks.
  struct Case {
    int n;
    float scale, temp, top_p, min_p;
    int top_k;
  };
  for (Case c : {Case{5000, 0.3f, 1.0f, 0.5f, 0.0f, 0}, Case{5000, 0.05f, 0.7f, 0.99f, 0.0f, 0},
                 Case{20000, 3.0f, 1.3f, 0.9f, 0.0f, 0}, Case{5000, 0.5f, 1.0f, 1.0f, 0.3f, 0},
                 Case{5000, 0.5f, 1.0f, 0.8f, 0.5f, 0}, Case{5000, 2.0f, 0.8f, 0.95f, 0.05f, 40},
                 Case{3000, 1.0f, 2.0f, 1.0f, 0.0f, 0}}) {
    std::vector<float> l = random_logits(c.n, 77 + c.n);
    for (float& x : l) x *= c.scale / 3.0f;
    SamplerParams p;
    p.temperature = c.temp;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    Sampler s(p);
    int32_t t = s.sample(l.data(), c.n);
    auto ref = reference_survivors(l, p);
    std::vector<std::pair<int32_t, double>> got;
    for (auto& cand : s.last_candidates()) got.push_back({cand.id, cand.p});
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), ref.size()) << "n " << c.n << " top_p " << c.top_p << " min_p " << c.min_p;
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(got[i].first, ref[i].first);
      EXPECT_NEAR(got[i].second, ref[i].second, 1e-6 + 1e-4 * ref[i].second);
    }
    EXPECT_TRUE(std::binary_search(ref.begin(), ref.end(), std::make_pair(t, 0.0),
                                   [](auto& a, auto& b) { return a.first < b.first; }));
  }
}

TEST(SamplerTest, TemperatureSharpensAndFlattens) {
  auto l = logits_for({0.6, 0.3, 0.1});
  auto share_of_top = [&](float temp) {
    SamplerParams p;
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 9;
    Sampler s(p);
    return histogram(s, l, 10000)[0] / 10000.0;
  };
  // Expected: T=1 → .6; T=0.5 → .36/(.36+.09+.01) ≈ .783; T=3 → ∝ p^(1/3) ≈ .451.
  EXPECT_NEAR(share_of_top(1.0f), 0.6, 0.025);
  EXPECT_NEAR(share_of_top(0.5f), 0.36 / 0.46, 0.025);
  double c = std::cbrt(0.6) + std::cbrt(0.3) + std::cbrt(0.1);
  EXPECT_NEAR(share_of_top(3.0f), std::cbrt(0.6) / c, 0.025);
}

TEST(SamplerTest, SameSeedSameSequenceDifferentSeedDiffers) {
  auto run = [](uint64_t seed) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      auto l = random_logits(200, 1000 + i);
      out.push_back(s.sample(l.data(), 200));
      s.accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(SamplerTest, ResetRestartsTheSequence) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1;
  Sampler s(p);
  auto l = random_logits(100, 2);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 20; ++i) a.push_back(s.sample(l.data(), 100));
  s.reset();
  for (int i = 0; i < 20; ++i) b.push_back(s.sample(l.data(), 100));
  EXPECT_EQ(a, b);
}

TEST(SamplerTest, RepeatPenaltyLowersRepeatedToken) {
  // Token 2 leads by a little; once it is in the history a penalty of 1.5 must flip greedy to 1.
  std::vector<float> l = {0.0f, 2.0f, 2.5f, -1.0f};
  SamplerParams p;
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 4;
  Sampler s(p);
  EXPECT_EQ(s.sample(l.data(), 4), 2);
  s.accept(2);
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  // Negative logits are multiplied (pushed further down), not divided towards zero.
  std::vector<float> neg = {-1.0f, -1.2f, -5.0f};
  Sampler s2(p);
  s2.accept(0);
  EXPECT_EQ(s2.sample(neg.data(), 3), 1);  // -1 * 1.5 = -1.5 < -1.2
}

TEST(SamplerTest, RepeatPenaltyWindowForgetsOldTokens) {
  std::vector<float> l = {0.0f, 2.0f, 2.5f};
  SamplerParams p;
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 2;
  Sampler s(p);
  s.accept(2);
  EXPECT_EQ(s.sample(l.data(), 3), 1);
  s.accept(0);
  s.accept(0);  // token 2 now falls out of the last-2 window
  EXPECT_EQ(s.sample(l.data(), 3), 2);
}

TEST(SamplerTest, RepeatPenaltyReducesProbabilityWhenSampling) {
  std::vector<float> l = {1.0f, 1.0f};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 2.0f;
  p.seed = 4;
  Sampler s(p);
  s.accept(0);
  s.sample(l.data(), 2);
  float p0 = 0;
  for (auto& c : s.last_candidates())
    if (c.id == 0) p0 = c.p;
  // logits become 0.5 and 1.0: p0 = 1/(1+e^0.5).
  EXPECT_NEAR(p0, 1.0 / (1.0 + std::exp(0.5)), 1e-5);
}

TEST(SamplerTest, NanAndInfDoNotCrash) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> l = {nan, 1.0f, nan, 0.5f};
  SamplerParams p;
  Sampler g(p);
  EXPECT_EQ(g.sample(l.data(), 4), 1);
  p.temperature = 1.0f;
  Sampler s(p);
  for (int i = 0; i < 100; ++i) {
    int32_t t = s.sample(l.data(), 4);
    EXPECT_TRUE(t == 1 || t == 3);
  }
  std::vector<float> all_masked = {ninf, ninf, ninf};
  int32_t t = s.sample(all_masked.data(), 3);
  EXPECT_TRUE(t >= 0 && t < 3);
  EXPECT_THROW(s.sample(l.data(), 0), Error);
}

}  // namespace
}  // namespace edgevlm
