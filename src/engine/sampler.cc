#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "core/error.h"

namespace edgevlm {

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

void Sampler::reset() {
  history_.clear();
  rng_.seed(p_.seed);
}

void Sampler::accept(int32_t token) {
  if (p_.repeat_last_n == 0) return;
  history_.push_back(token);
  if (p_.repeat_last_n > 0) {
    while (history_.size() > static_cast<size_t>(p_.repeat_last_n)) history_.pop_front();
  }
}

// 53 random bits → [0, 1). Written out rather than std::uniform_real_distribution, whose output
// differs between standard libraries; mt19937_64 itself is fully specified, so a seed gives the
// same draws everywhere.
double Sampler::uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

// CTRL-style penalty as in llama.cpp: positive logits are divided, negative ones multiplied, once
// per distinct token however often it repeats.
void Sampler::apply_penalty(float* logits, int n_vocab) const {
  std::unordered_set<int32_t> seen;
  for (int32_t t : history_) {
    if (t < 0 || t >= n_vocab || !seen.insert(t).second) continue;
    float& l = logits[t];
    l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
  }
}

int32_t Sampler::sample(const float* logits, int n_vocab) {
  EV_CHECK(n_vocab > 0, "sampler: n_vocab must be positive, got %d", n_vocab);
  const float neg_inf = -std::numeric_limits<float>::infinity();

  // The penalty works on a copy; without one the caller's logits are read in place.
  const float* l = logits;
  if (p_.repeat_penalty != 1.0f && !history_.empty()) {
    work_.assign(logits, logits + n_vocab);
    apply_penalty(work_.data(), n_vocab);
    l = work_.data();
  }

  if (p_.temperature <= 0.0f) {
    // Greedy needs no candidate list. Lowest id wins ties, so it is deterministic.
    int32_t best = 0;
    float best_l = std::isnan(l[0]) ? neg_inf : l[0];
    for (int i = 1; i < n_vocab; ++i)
      if (l[i] > best_l) {  // false for NaN
        best_l = l[i];
        best = i;
      }
    cand_.assign(1, {best, best_l, 1.0f});
    return best;
  }

  cand_.resize(n_vocab);
  for (int i = 0; i < n_vocab; ++i)
    cand_[i] = {i, std::isnan(l[i]) ? neg_inf : l[i], 0.0f};  // NaN never wins and never breaks a sort

  auto by_logit_desc = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };

  // Invariant: cand_[0, n_sorted) are the largest candidates, sorted highest first. Sorting is
  // lazy because a full sort of a 100k vocabulary costs more than all the rest of a step.
  size_t n_sorted = 0;
  auto ensure_sorted = [&](size_t m) {
    m = std::min(m, cand_.size());
    if (m <= n_sorted) return;
    if (m > cand_.size() / 8) {
      // partial_sort is a heap sort: past a small fraction a plain sort of the rest is faster.
      std::sort(cand_.begin() + n_sorted, cand_.end(), by_logit_desc);
      n_sorted = cand_.size();
      return;
    }
    std::partial_sort(cand_.begin() + n_sorted, cand_.begin() + m, cand_.end(), by_logit_desc);
    n_sorted = m;
  };

  if (p_.top_k > 0 && p_.top_k < n_vocab) {
    std::nth_element(cand_.begin(), cand_.begin() + (p_.top_k - 1), cand_.end(), by_logit_desc);
    cand_.resize(p_.top_k);
    ensure_sorted(cand_.size());
  }

  const Candidate& top = n_sorted ? cand_[0] : *std::min_element(cand_.begin(), cand_.end(), by_logit_desc);
  if (!std::isfinite(top.logit)) {
    // Nothing finite to draw from (all -inf after masking, or +inf): take the leader.
    int32_t id = top.id;
    cand_.assign(1, {id, top.logit, 1.0f});
    return id;
  }
  const float mx = top.logit;  // stays among the survivors of every filter below

  // Probabilities at `inv_temp`; returns that of the leader.
  auto softmax = [&](float inv_temp) {
    double sum = 0;
    for (Candidate& c : cand_) {
      c.p = std::exp((c.logit - mx) * inv_temp);
      sum += c.p;
    }
    for (Candidate& c : cand_) c.p = static_cast<float>(c.p / sum);
    return static_cast<float>(1.0 / sum);
  };
  const float p_max = softmax(1.0f);

  if (p_.top_p < 1.0f) {
    // Most of the mass usually sits in a few hundred tokens: sort those first, more only if needed.
    double cum = 0;
    size_t i = 0, keep = cand_.size();
    for (size_t block = 256;; block *= 8) {
      ensure_sorted(block);
      for (; i < n_sorted && keep == cand_.size(); ++i) {
        cum += cand_[i].p;
        if (cum >= p_.top_p) keep = i + 1;
      }
      if (keep < cand_.size() || n_sorted == cand_.size()) break;
    }
    cand_.resize(keep);
    n_sorted = std::min(n_sorted, keep);
  }

  if (p_.min_p > 0.0f) {
    const float threshold = p_.min_p * p_max;
    if (n_sorted == cand_.size()) {
      size_t keep = 1;
      while (keep < cand_.size() && cand_[keep].p >= threshold) ++keep;
      cand_.resize(keep);
    } else {
      auto mid = std::partition(cand_.begin(), cand_.end(), [&](const Candidate& c) { return c.p >= threshold; });
      cand_.erase(mid, cand_.end());
      n_sorted = 0;
      ensure_sorted(cand_.size());
    }
    n_sorted = cand_.size();
  }

  softmax(1.0f / p_.temperature);

  const double u = uniform01();
  double cum = 0;
  for (const Candidate& c : cand_) {
    cum += c.p;
    if (u < cum) return c.id;
  }
  return cand_.back().id;  // u landed in the rounding slack at the top
}

}  // namespace edgevlm
