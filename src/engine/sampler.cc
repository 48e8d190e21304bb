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
void Sampler::apply_penalty(std::vector<Candidate>& c) const {
  if (p_.repeat_penalty == 1.0f || history_.empty()) return;
  std::unordered_set<int32_t> seen;
  for (int32_t t : history_) {
    if (t < 0 || t >= static_cast<int32_t>(c.size()) || !seen.insert(t).second) continue;
    float& l = c[t].logit;  // candidates are still indexed by id here
    l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
  }
}

int32_t Sampler::sample(const float* logits, int n_vocab) {
  EV_CHECK(n_vocab > 0, "sampler: n_vocab must be positive, got %d", n_vocab);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  cand_.resize(n_vocab);
  for (int i = 0; i < n_vocab; ++i) {
    float l = logits[i];
    cand_[i] = {i, std::isnan(l) ? neg_inf : l, 0.0f};  // NaN never wins and never breaks a sort
  }
  apply_penalty(cand_);

  auto by_logit_desc = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };

  if (p_.temperature <= 0.0f) {
    // Lowest id wins ties, so greedy is deterministic whatever the order of evaluation.
    const Candidate* best = &cand_[0];
    for (const Candidate& c : cand_)
      if (c.logit > best->logit) best = &c;
    int32_t id = best->id;
    cand_.assign(1, {id, best->logit, 1.0f});
    return id;
  }

  // top-k, leaving the candidates sorted by logit, highest first.
  if (p_.top_k > 0 && p_.top_k < n_vocab) {
    std::nth_element(cand_.begin(), cand_.begin() + (p_.top_k - 1), cand_.end(), by_logit_desc);
    cand_.resize(p_.top_k);
  }
  std::sort(cand_.begin(), cand_.end(), by_logit_desc);

  if (!std::isfinite(cand_[0].logit)) {
    // Nothing finite to draw from (all -inf after masking, or +inf): take the leader.
    int32_t id = cand_[0].id;
    cand_.assign(1, {id, cand_[0].logit, 1.0f});
    return id;
  }

  auto softmax = [&](float inv_temp) {
    const float mx = cand_[0].logit;  // sorted: the first one is the largest
    double sum = 0;
    for (Candidate& c : cand_) {
      c.p = std::exp((c.logit - mx) * inv_temp);
      sum += c.p;
    }
    for (Candidate& c : cand_) c.p = static_cast<float>(c.p / sum);
  };
  softmax(1.0f);

  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(std::max<size_t>(keep, 1));
  }

  if (p_.min_p > 0.0f) {
    const float threshold = p_.min_p * cand_[0].p;
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].p >= threshold) ++keep;
    cand_.resize(keep);
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
