// Chunked prefill (BlueLM-V-3B, section on system design): the prompt's embeddings go through
// the decoder in chunks of a fixed number of positions (the paper found 128 fastest on its
// phone), which bounds the activation memory and keeps each step a batched, compute-bound
// matrix product. This is the one place the engine implements it.
#pragma once

#include <atomic>
#include <vector>

#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/llm.h"

namespace edgevlm {

constexpr int kDefaultPrefillChunk = 128;

// Feeds n embeddings (n × n_embd) through llm_forward in chunks of chunk_size; returns the
// logits of the last position. Throws edgevlm::Error naming both numbers when
// cache.n_past() + n exceeds cache.n_ctx(), and when n < 1 or chunk_size < 1. When *cancel turns
// true, stops after the chunk in progress and returns no logits (the cache then holds a prefix of
// the prompt; the caller truncates it).
// spans: the prompt's image runs (positions relative to its start) that the decoder reads in its
// own way (PositionSpan); a bidirectional one goes through in one chunk, whatever chunk_size.
std::vector<float> prefill_chunked(const LlmModel& m, KvCache& cache, const float* embeddings, int n,
                                   int chunk_size, ThreadPool& pool, const std::atomic<bool>* cancel = nullptr,
                                   const std::vector<PositionSpan>& spans = {});

}  // namespace edgevlm
