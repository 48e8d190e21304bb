// Token sampling: greedy, temperature, top-k, top-p (nucleus), min-p and a repetition penalty over
// the last N accepted tokens, driven by a seeded std::mt19937_64 so a seed reproduces a sequence.
//
// Order of the chain (the same as llama.cpp's default, so settings mean the same in both):
//   repetition penalty → top-k → top-p → min-p → temperature → draw.
// top-p and min-p are judged on the softmax at temperature 1; the temperature only reshapes the
// survivors. temperature <= 0 means greedy: argmax after the penalty.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace edgevlm {

struct SamplerParams {
  float temperature = 0;      // 0 = greedy
  int top_k = 40;             // <= 0 or >= n_vocab: off
  float top_p = 0.95f;        // >= 1: off
  float min_p = 0.05f;        // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; > 1 discourages tokens seen in the last repeat_last_n
  int repeat_last_n = 64;     // 0: off; -1: the whole history
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);

  // Picks a token from n_vocab logits (not modified). Throws edgevlm::Error when n_vocab <= 0.
  int32_t sample(const float* logits, int n_vocab);
  // Records a token in the penalty history (call for prompt tokens and for each generated token).
  void accept(int32_t token);
  // Forgets the history and restarts the RNG from the seed.
  void reset();

  const SamplerParams& params() const { return p_; }

  // The probabilities the last non-greedy sample() drew from: (token, p) over the surviving
  // candidates, p summing to 1. Exposed for tests and for diagnostics.
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  const std::vector<Candidate>& last_candidates() const { return cand_; }

 private:
  void apply_penalty(float* logits, int n_vocab) const;
  double uniform01();

  SamplerParams p_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
  std::vector<Candidate> cand_;
  std::vector<float> work_;  // the logits after the penalty
};

}  // namespace edgevlm
