#include "engine/prefill.h"

#include <algorithm>

#include "core/error.h"
#include "ops/matmul.h"

namespace edgevlm {

std::vector<float> prefill_chunked(const LlmModel& m, KvCache& cache, const float* embeddings, int n,
                                   int chunk_size, ThreadPool& pool, const std::atomic<bool>* cancel) {
  EV_CHECK(n >= 1, "prefill: the prompt is empty");
  EV_CHECK(chunk_size >= 1, "prefill: chunk size must be at least 1, got %d", chunk_size);
  EV_CHECK(int64_t(cache.n_past()) + n <= cache.n_ctx(),
           "prompt of %d tokens does not fit the context: %d positions already used, context size %d",
           n, cache.n_past(), cache.n_ctx());
  const LlmConfig& c = m.config();
  std::vector<float> logits(size_t(c.n_vocab));
  // A prompt's products on the same kernels whatever the chunk size (ops/matmul.h).
  PromptRowsScope prompt_rows;
  for (int done = 0; done < n;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return {};
    const int len = std::min(chunk_size, n - done);
    // Only the final chunk's last position needs logits; earlier chunks just fill the cache.
    const bool last = done + len == n;
    llm_forward(m, cache, embeddings + int64_t(done) * c.n_embd, len, last ? logits.data() : nullptr, false, pool);
    done += len;
  }
  return logits;
}

}  // namespace edgevlm
