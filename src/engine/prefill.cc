#include "engine/prefill.h"

#include <algorithm>

#include "core/error.h"
#include "ops/matmul.h"

namespace edgevlm {

std::vector<float> prefill_chunked(const LlmModel& m, KvCache& cache, const float* embeddings, int n,
                                   int chunk_size, ThreadPool& pool, const std::atomic<bool>* cancel,
                                   const std::vector<PositionSpan>& spans) {
  EV_CHECK(n >= 1, "prefill: the prompt is empty");
  EV_CHECK(chunk_size >= 1, "prefill: chunk size must be at least 1, got %d", chunk_size);
  EV_CHECK(int64_t(cache.n_past()) + n <= cache.n_ctx(),
           "prompt of %d tokens does not fit the context: %d positions already used, context size %d",
           n, cache.n_past(), cache.n_ctx());
  for (const PositionSpan& s : spans)
    EV_CHECK(s.begin >= 0 && s.begin <= s.end && s.end <= n, "prefill: image span [%d, %d) outside the prompt of %d",
             s.begin, s.end, n);
  const LlmConfig& c = m.config();
  std::vector<float> logits(size_t(c.n_vocab));
  // A prompt's products on the same kernels whatever the chunk size (ops/matmul.h).
  PromptRowsScope prompt_rows;
  const int base = cache.n_past();
  for (int done = 0; done < n;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return {};
    int end = std::min(done + chunk_size, n);
    // A bidirectional span goes through in one chunk (its positions see each other), alone with
    // the positions before it: the chunk ends where a span would be cut, or where a second begins.
    PositionSpan in_chunk;
    for (const PositionSpan& s : spans) {
      if (!s.bidirectional || s.empty() || s.end <= done || s.begin >= end) continue;
      if (!in_chunk.empty() || s.begin < done) {  // a second span, or one begun in an earlier chunk
        end = std::max(done + 1, s.begin);
        if (s.begin < done) end = std::max(end, s.end);
        break;
      }
      if (s.end > end) end = s.begin > done ? s.begin : s.end;
      if (s.begin >= done && s.end <= end) in_chunk = s;
    }
    const int len = end - done;
    // Only the final chunk's last position needs logits; earlier chunks just fill the cache.
    const bool last = end == n;
    // The spans this chunk touches, in the cache's positions (an M-RoPE grid may be cut: the
    // decoder continues its coordinates).
    std::vector<PositionSpan> chunk_spans;
    for (PositionSpan s : spans)
      if (!s.empty() && s.begin < end && s.end > done) {
        s.begin += base;
        s.end += base;
        chunk_spans.push_back(s);
      }
    llm_forward(m, cache, embeddings + int64_t(done) * c.n_embd, len, last ? logits.data() : nullptr, false, pool,
                chunk_spans);
    done = end;
  }
  return logits;
}

}  // namespace edgevlm
