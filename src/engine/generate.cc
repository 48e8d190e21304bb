#include "engine/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/prefill.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"

namespace edgevlm {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStringMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);

  // Earliest complete stop string wins; everything before it goes out, it and the rest do not.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    size_t pos = pending_.find(s);
    if (pos < first) {
      first = pos;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }

  // Hold back the longest tail that is a proper prefix of some stop string. Anything earlier can
  // no longer start a match: that would need a longer such tail, or a complete match found above.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    size_t max_len = std::min(s.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  pending_.clear();
  return out;
}

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::EndOfGeneration: return "end-of-generation";
    case StopReason::StopString: return "stop-string";
    case StopReason::MaxTokens: return "max-tokens";
    case StopReason::ContextFull: return "context-full";
    case StopReason::Callback: return "callback";
    case StopReason::Cancelled: return "cancelled";
  }
  return "?";
}

Generator::Generator(const LlmModel& model, const Tokenizer& tokenizer, KvCache& cache, ThreadPool& pool)
    : model_(model), tok_(tokenizer), cache_(cache), pool_(pool) {}

GenerateResult Generator::generate(const std::vector<int32_t>& prompt, const GenerateParams& params,
                                   const TextCallback& on_text) {
  EV_CHECK(!prompt.empty(), "generate: the prompt is empty");
  const int n_vocab = model_.config().n_vocab;
  for (size_t i = 0; i < prompt.size(); ++i)
    EV_CHECK(prompt[i] >= 0 && prompt[i] < n_vocab,
             "generate: prompt token %zu has id %d, outside the vocabulary [0, %d)", i, prompt[i], n_vocab);
  // Checked here too so an over-long prompt fails before the embedding buffer is allocated.
  EV_CHECK(prompt.size() <= static_cast<size_t>(cache_.n_ctx() - cache_.n_past()),
           "prompt of %zu tokens does not fit the context (%d of %d positions free)", prompt.size(),
           cache_.n_ctx() - cache_.n_past(), cache_.n_ctx());
  const int n = static_cast<int>(prompt.size());
  std::vector<float> emb(static_cast<size_t>(n) * model_.config().n_embd);
  model_.embed_tokens(prompt.data(), n, emb.data());
  return generate_from_embeddings(emb.data(), n, params, on_text, prompt);
}

GenerateResult Generator::generate_from_embeddings(const float* embeddings, int n_prompt,
                                                   const GenerateParams& params,
                                                   const TextCallback& on_text,
                                                   const std::vector<int32_t>& history,
                                                   const std::vector<PositionSpan>& image_spans) {
  const LlmConfig& cfg = model_.config();
  EV_CHECK(n_prompt > 0, "generate: the prompt is empty");
  EV_CHECK(params.chunk_size > 0, "generate: prefill chunk size must be positive, got %d", params.chunk_size);
  const int room = cache_.n_ctx() - cache_.n_past();
  EV_CHECK(n_prompt <= room, "prompt of %d tokens does not fit the context (%d of %d positions free)",
           n_prompt, room, cache_.n_ctx());
  const bool until_full = params.n_predict < 0;
  const int n_predict = until_full ? room - n_prompt : params.n_predict;
  EV_CHECK(n_prompt + n_predict <= room,
           "prompt (%d tokens) + requested tokens (%d) exceed the context (%d of %d positions free); "
           "ask for fewer tokens or a larger context",
           n_prompt, n_predict, room, cache_.n_ctx());

  GenerateResult r;
  r.n_prompt = n_prompt;
  r.stop_reason = until_full ? StopReason::ContextFull : StopReason::MaxTokens;

  Sampler sampler(params.sampler);
  for (int32_t id : history) sampler.accept(id);

  Timer prefill_timer;
  std::vector<float> logits =
      prefill_chunked(model_, cache_, embeddings, n_prompt, params.chunk_size, pool_, params.cancel, image_spans);
  r.prefill_ms = prefill_timer.elapsed_ms();
  if (logits.empty() && params.cancel && params.cancel->load()) {
    r.stop_reason = StopReason::Cancelled;
    r.cancelled_in_prefill = true;
    return r;
  }
  EV_CHECK(static_cast<int>(logits.size()) >= cfg.n_vocab, "generate: prefill returned %zu logits, expected %d",
           logits.size(), cfg.n_vocab);
  if (params.keep_first_logits) r.first_logits.assign(logits.begin(), logits.begin() + cfg.n_vocab);

  Utf8StreamDecoder utf8;
  StopStringMatcher stops(params.stop_strings);
  bool callback_stop = false;
  auto emit = [&](const std::string& text) {
    if (text.empty() || callback_stop) return;
    r.text += text;
    if (on_text && !on_text(text)) callback_stop = true;
  };

  std::vector<float> emb(cfg.n_embd);
  Timer decode_timer;
  for (int i = 0; i < n_predict; ++i) {
    if (params.cancel && params.cancel->load(std::memory_order_relaxed)) {
      r.stop_reason = StopReason::Cancelled;
      break;
    }
    // NaN logits come from a NaN or infinite weight (a K-quant block's f16 scale, say): the forward
    // pass carries them through as IEEE arithmetic, and here they become a clear error instead of
    // tokens drawn from noise.
    const auto nan_at =
        std::find_if(logits.begin(), logits.begin() + cfg.n_vocab, [](float v) { return std::isnan(v); });
    EV_CHECK(nan_at == logits.begin() + cfg.n_vocab,
             "generate: the model's logits are NaN (token %lld at step %d): a weight or quantization scale of %s is "
             "NaN or infinite (a corrupt file?)",
             (long long)(nan_at - logits.begin()), i, model_.file().path().c_str());
    if (params.keep_margins) {
      float a = -INFINITY, b = -INFINITY;
      for (int v = 0; v < cfg.n_vocab; ++v) {
        const float x = logits[size_t(v)];
        if (x > a) {
          b = a;
          a = x;
        } else if (x > b) {
          b = x;
        }
      }
      r.margins.push_back(a - b);
    }
    const int32_t id = sampler.sample(logits.data(), cfg.n_vocab);
    if (params.stop_at_eog && tok_.is_end_of_generation(id)) {
      r.stop_reason = StopReason::EndOfGeneration;
      break;
    }
    sampler.accept(id);
    r.tokens.push_back(id);

    // Fed before the stop checks, so the cache always holds prompt + r.tokens.
    model_.embed_tokens(&id, 1, emb.data());
    llm_forward(model_, cache_, emb.data(), 1, logits.data(), false, pool_);
    ++r.n_decode;

    // Ids past the tokenizer's vocabulary (embedding tables padded beyond it) have no text.
    if (id < tok_.n_vocab() && (params.emit_special || !tok_.is_special(id)))
      emit(stops.push(utf8.push(tok_.token_to_piece(id))));
    if (stops.stopped()) {
      r.stop_reason = StopReason::StopString;
      r.stop_string = stops.matched();
      break;
    }
    if (callback_stop) {
      r.stop_reason = StopReason::Callback;
      break;
    }
  }
  r.decode_ms = decode_timer.elapsed_ms();

  // Bytes of an unfinished character and a tail held back for a stop string that never came.
  if (!stops.stopped() && !callback_stop) {
    emit(stops.push(utf8.flush()));
    if (stops.stopped()) {
      r.stop_reason = StopReason::StopString;
      r.stop_string = stops.matched();
    }
    emit(stops.flush());
  }
  return r;
}

}  // namespace edgevlm
