// Text generation: chunked prefill of the prompt, then a decode loop of sample → stream → feed,
// stopping at an end-of-generation token, at a stop string, at the token budget or when the
// callback asks to. Prompts come as token ids or, for the vision path, as ready embeddings (image
// embeddings spliced between text-token embeddings).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "model/llm.h"

namespace edgevlm {

class LlmModel;
class Tokenizer;
class KvCache;
class ThreadPool;

// Finds stop strings in streamed text, even when one spans several pushes, and holds back just
// the tail that could still become one, so the stop string itself is never emitted.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  // Adds text and returns what is safe to emit now. Once a stop string completes, returns the
  // text before it and stopped() turns true; later pushes return nothing.
  std::string push(std::string_view text);
  // End of stream: returns the held-back tail (empty when stopped).
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string that fired

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  std::string matched_;
  bool stopped_ = false;
};

struct GenerateParams {
  int n_predict = 128;   // most tokens to generate; < 0: until the context is full
  int chunk_size = 128;  // prefill chunk (kDefaultPrefillChunk, the paper's best on the phone)
  SamplerParams sampler;
  std::vector<std::string> stop_strings;
  bool stop_at_eog = true;         // false: keep going past end-of-generation tokens (benchmarks)
  bool emit_special = false;       // stream the text of special/control tokens too
  bool keep_first_logits = false;  // copy the logits of the first generated position
  bool keep_margins = false;       // record each step's top-1 minus runner-up logit (parity tests)
  // Set from any thread to stop: checked between prefill chunks and before each decode step.
  const std::atomic<bool>* cancel = nullptr;
};

enum class StopReason { EndOfGeneration, StopString, MaxTokens, ContextFull, Callback, Cancelled };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  // Generated ids, every one of them fed to the model, so afterwards the cache holds
  // prompt + tokens. An end-of-generation token that stopped the loop is not included.
  std::vector<int32_t> tokens;
  std::string text;  // all text streamed to the callback
  StopReason stop_reason = StopReason::MaxTokens;
  std::string stop_string;  // when stop_reason == StopString
  // Cancelled during the prefill: the cache holds only part of the prompt, and nothing was generated.
  bool cancelled_in_prefill = false;

  int n_prompt = 0;         // positions prefilled
  double prefill_ms = 0;    // prefill_chunked over the prompt
  int n_decode = 0;         // single-token forward passes
  double decode_ms = 0;     // from the end of prefill to the end of the last forward, sampling included
  double prefill_tok_s() const { return prefill_ms > 0 ? n_prompt * 1000.0 / prefill_ms : 0; }
  double decode_tok_s() const { return decode_ms > 0 ? n_decode * 1000.0 / decode_ms : 0; }

  std::vector<float> first_logits;  // n_vocab floats when keep_first_logits
  std::vector<float> margins;       // per generated token, when keep_margins: top-1 − runner-up logit
};

// Receives text as it is produced: whole UTF-8 characters only, never part of a stop string.
// Return false to stop generating.
using TextCallback = std::function<bool(std::string_view text)>;

class Generator {
 public:
  // Keeps references to all four; generation appends to whatever the cache already holds, so
  // successive calls continue one conversation (clear the cache for a fresh one).
  Generator(const LlmModel& model, const Tokenizer& tokenizer, KvCache& cache, ThreadPool& pool);

  // Prefills `prompt` (ids, BOS included if wanted) and generates. Throws edgevlm::Error when the
  // prompt is empty, holds an id outside the vocabulary, or prompt + n_predict does not fit the
  // cache.
  GenerateResult generate(const std::vector<int32_t>& prompt, const GenerateParams& params,
                          const TextCallback& on_text = {});

  // Same from n_prompt ready embeddings (n_prompt × n_embd floats). `history` lists the ids of
  // the text part of the prompt for the repetition penalty (image positions have none);
  // `image_spans` the prompt's image runs the decoder reads in its own way (VlmPrompt::image_spans).
  GenerateResult generate_from_embeddings(const float* embeddings, int n_prompt,
                                          const GenerateParams& params,
                                          const TextCallback& on_text = {},
                                          const std::vector<int32_t>& history = {},
                                          const std::vector<PositionSpan>& image_spans = {});

 private:
  const LlmModel& model_;
  const Tokenizer& tok_;
  KvCache& cache_;
  ThreadPool& pool_;
};

}  // namespace edgevlm
