#include "engine/session.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/timer.h"
#include "engine/prefill.h"
#include "model/llm.h"
#include "model/tokenizer.h"

namespace edgevlm {
namespace {

std::string trim_ws(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

Session::Session(std::shared_ptr<const Engine> engine, const SessionOptions& opt)
    : engine_(std::move(engine)), opt_(opt) {
  EV_CHECK(engine_ != nullptr, "a session needs a loaded engine");
  EV_CHECK(opt.n_ctx >= 0, "the context size must be 0 (the engine's) or more, got %d", opt.n_ctx);
  const int n_ctx = opt.n_ctx > 0 ? opt.n_ctx : engine_->default_n_ctx();
  cache_ = std::make_unique<KvCache>(engine_->llm().config(), n_ctx, opt.kv_type.value_or(engine_->options().kv_type));
  if (!opt.system_prompt.empty()) history_.push_back({"system", opt.system_prompt});
  worker_ = std::thread([this] { worker_main(); });
}

Session::~Session() {
  {
    std::lock_guard<std::mutex> lk(q_mu_);
    stop_ = true;
    for (auto& j : queue_) j->promise.set_exception(std::make_exception_ptr(Error("session closed")));
    queue_.clear();
  }
  q_cv_.notify_all();
  worker_.join();
}

int Session::n_past() const { return cache_->n_past(); }
int Session::n_ctx() const { return cache_->n_ctx(); }
KvType Session::kv_type() const { return cache_->type(); }

void Session::attach_image(const std::string& path) {
  EV_CHECK(engine_->has_vision(), "cannot attach image '%s': this model has no vision part (no mmproj loaded)",
           path.c_str());
  attach_image_bytes(read_image_file(path), path);
}

void Session::attach_image_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  EV_CHECK(engine_->has_vision(), "cannot attach image '%s': this model has no vision part (no mmproj loaded)",
           name.c_str());
  probe_image(bytes.data(), bytes.size(), {}, name);
  auto job = std::make_shared<Job>();
  job->name = name;
  job->bytes = std::move(bytes);
  enqueue(std::move(job));
}

void Session::attach_image_pixels(Image img, const std::string& name) {
  EV_CHECK(engine_->has_vision(), "cannot attach image '%s': this model has no vision part (no mmproj loaded)",
           name.c_str());
  EV_CHECK(img.width > 0 && img.height > 0, "image '%s' has no pixels (%d x %d)", name.c_str(), img.width,
           img.height);
  const int64_t n = int64_t(img.width) * img.height;
  const ImageLoadOptions limits;
  EV_CHECK(n <= limits.max_pixels, "image '%s' is %d x %d = %lld pixels, over the limit of %lld pixels",
           name.c_str(), img.width, img.height, (long long)n, (long long)limits.max_pixels);
  EV_CHECK(img.pixels.size() == size_t(n) * 3, "image '%s': %zu bytes of pixels for %d x %d RGB", name.c_str(),
           img.pixels.size(), img.width, img.height);
  auto job = std::make_shared<Job>();
  job->name = name;
  job->pixels = std::move(img);
  enqueue(std::move(job));
}

void Session::attach_image_embeddings(SharedEmbeddings embeddings, const std::string& name) {
  EV_CHECK(embeddings.valid(), "image '%s': no embeddings", name.c_str());
  auto job = std::make_shared<Job>();
  job->name = name;
  job->encoded = std::move(embeddings);
  enqueue(std::move(job));
}

void Session::enqueue(std::shared_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lk(state_mu_);
    job->epoch = epoch_;
  }
  pending_.push_back({job->name, job->promise.get_future()});
  {
    std::lock_guard<std::mutex> lk(q_mu_);
    queue_.push_back(std::move(job));
  }
  q_cv_.notify_one();
}

void Session::worker_main() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lk(q_mu_);
      q_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      std::shared_ptr<const ImageEmbeddings> e;
      if (job->encoded.valid()) {
        e = job->encoded.get();
        EV_CHECK(e != nullptr, "image '%s': no embeddings", job->name.c_str());
      } else {
        Timer t;
        Image img = job->bytes.empty() ? std::move(job->pixels)
                                       : load_image_from_memory(job->bytes.data(), job->bytes.size(), {}, job->name);
        job->bytes = {};
        const double decode_ms = t.elapsed_ms();
        auto fresh = std::make_shared<ImageEmbeddings>(engine_->encode(img, job->name));
        fresh->preprocess_ms += decode_ms;
        e = std::move(fresh);
      }
      {
        std::lock_guard<std::mutex> lk(state_mu_);
        if (job->epoch == epoch_ && opt_.prefill_while_typing && !raw_) prefill_next_image(*e);
      }
      job->promise.set_value(std::move(e));  // after the prefill: ask() waits for both
    } catch (...) {
      {
        std::lock_guard<std::mutex> lk(state_mu_);
        if (job->epoch == epoch_) early_.broken = true;  // later images cannot extend the turn in order
      }
      job->promise.set_exception(std::current_exception());
    }
  }
}

void Session::begin_run() {
  std::lock_guard<std::mutex> lk(run_mu_);
  running_ = true;
  cancel_.store(false);
}

void Session::end_run() {
  std::lock_guard<std::mutex> lk(run_mu_);
  running_ = false;
  cancel_.store(false);
}

void Session::cancel() {
  std::lock_guard<std::mutex> lk(run_mu_);
  if (running_) cancel_.store(true);
}

// The rollback point is a checkpoint, which also covers LFM2's convolution state.
GenerateResult Session::run_generation(const VlmPrompt& vp, GenerateParams gp, const TextCallback& on_text,
                                       const KvCache::Checkpoint& rollback, const std::vector<int32_t>& history) {
  const int room = cache_->n_ctx() - cache_->n_past();
  EV_CHECK(vp.n_positions < room,
           "this turn takes %d positions (%d of them image) but the context has %d left of %d; reset the "
           "conversation, use fewer tiles or a larger context",
           vp.n_positions, vp.n_image_positions, room, cache_->n_ctx());
  // Capped by the room left; an answer that stops there ends for want of context.
  const bool capped = gp.n_predict < 0 || gp.n_predict > room - vp.n_positions;
  gp.n_predict = capped ? room - vp.n_positions : gp.n_predict;
  gp.cancel = &cancel_;
  Generator gen(engine_->llm(), engine_->tokenizer(), *cache_, engine_->pool());
  GenerateResult r;
  begin_run();
  try {
    r = gen.generate_from_embeddings(vp.embeddings.data(), vp.n_positions, gp, on_text, history, vp.image_spans);
  } catch (...) {
    end_run();
    cache_->restore(rollback);
    throw;
  }
  end_run();
  if (r.cancelled_in_prefill) cache_->restore(rollback);
  if (capped && r.stop_reason == StopReason::MaxTokens) r.stop_reason = StopReason::ContextFull;
  return r;
}

std::string Session::turn_delta(const std::string& content, std::string* full_out,
                                std::vector<ChatMessage>* msgs_out) const {
  const ChatTemplate tmpl = engine_->chat_template();
  std::vector<ChatMessage> msgs = history_;
  msgs.push_back({"user", content});
  std::string full = apply_chat_template(tmpl, msgs, true);
  std::string delta;
  if (cache_->n_past() == 0 && !early_.active) {
    delta = full;
  } else {
    const std::string known = rendered_ + last_answer_;
    if (full.compare(0, known.size(), known) == 0) {
      delta = full.substr(known.size());
    } else {
      // The template rewrote the answer (Llama-3 trims it): continue from where it ends there.
      const std::string closed = apply_chat_template(tmpl, history_, false);
      EV_CHECK(full.compare(0, closed.size(), closed) == 0, "chat template %s: a turn does not extend the conversation",
               chat_template_name(tmpl));
      const std::string a = trim_ws(last_answer_);
      const size_t at = a.empty() ? std::string::npos : closed.rfind(a);
      delta = (at == std::string::npos ? std::string() : closed.substr(at + a.size())) + full.substr(closed.size());
    }
  }
  if (full_out) *full_out = std::move(full);
  if (msgs_out) *msgs_out = std::move(msgs);
  return delta;
}

void Session::prefill_next_image(const ImageEmbeddings& e) {
  if (early_.broken) return;
  Timer t;
  const int k = early_.n_images + 1;
  // The turn with k images before a question not yet known: its text up to the end of the k-th
  // image placeholder does not depend on the question (nor on images attached later).
  std::string delta;
  try {
    delta = turn_delta(add_image_placeholders("?", k));
  } catch (const Error&) {
    early_.broken = true;
    return;
  }
  size_t at = std::string::npos, from = 0;
  for (int i = 0; i < k; ++i, from = at + kImagePlaceholder.size())
    if ((at = delta.find(kImagePlaceholder, from)) == std::string::npos) break;
  if (at == std::string::npos || delta.compare(0, early_.text.size(), early_.text) != 0) {
    early_.broken = true;
    return;
  }
  const std::string prefix = delta.substr(0, at + kImagePlaceholder.size());
  const bool fresh = !early_.active;
  const KvCache::Checkpoint before = fresh ? cache_->checkpoint() : early_.before;
  const Tokenizer& tok = engine_->tokenizer();
  const VlmPrompt vp = assemble_prompt(engine_->llm(), tok, engine_->markers(), prefix.substr(early_.text.size()), {&e},
                                       fresh && before.n_past == 0 && tok.add_bos_default());
  // Leave room for the question and the answer; if it does not fit, ask() reports it the plain way.
  if (vp.n_positions >= cache_->n_ctx() - cache_->n_past()) {
    early_.broken = true;
    return;
  }
  prefill_chunked(engine_->llm(), *cache_, vp.embeddings.data(), vp.n_positions, kDefaultPrefillChunk, engine_->pool(),
                  nullptr, vp.image_spans);
  early_.active = true;
  early_.before = before;
  early_.n_images = k;
  early_.text = prefix;
  for (int32_t id : vp.text_tokens()) early_.tokens.push_back(id);
  early_.positions.insert(early_.positions.end(), vp.tokens.begin(), vp.tokens.end());
  early_.n_positions += vp.n_positions;
  early_.n_image_positions += vp.n_image_positions;
  early_.ms += t.elapsed_ms();
}

SessionAnswer Session::ask(const std::string& question, GenerateParams gp, const TextCallback& on_text) {
  return run_turn(question, std::move(gp), on_text, nullptr);
}

SessionAnswer Session::add_exchange(const std::string& question, const std::string& answer) {
  return run_turn(question, GenerateParams{}, {}, &answer);
}

SessionAnswer Session::run_turn(const std::string& question, GenerateParams gp, const TextCallback& on_text,
                                const std::string* given) {
  EV_CHECK(!raw_, "this session was used for raw completion; reset() it before chatting");
  SessionAnswer ans;
  // Wait for the encodes; an image that failed is left out of the turn and reported.
  std::vector<std::shared_ptr<const ImageEmbeddings>> embs;
  {
    Timer wait;
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& p : pending) {
      try {
        embs.push_back(p.embeddings.get());
      } catch (const std::exception& e) {
        ans.image_errors.push_back(e.what());
      }
    }
    ans.wait_ms = wait.elapsed_ms();
  }
  ans.n_images = int(embs.size());
  for (const auto& e : embs) {
    ans.n_tiles += e->n_tiles;
    ans.grids.push_back(e->grid);
    if (e->mrope)
      for (int i = 0; i < e->n_tiles; ++i) ans.mrope_grids.push_back(e->token_grid(i));
    ans.vit_ms += e->vit_ms + e->projector_ms;
  }

  std::lock_guard<std::mutex> lk(state_mu_);
  std::string full;
  std::vector<ChatMessage> msgs;
  const std::string delta = turn_delta(add_image_placeholders(question, int(embs.size())), &full, &msgs);
  const ChatTemplate tmpl = engine_->chat_template();
  const Tokenizer& tok = engine_->tokenizer();

  // Use what was prefilled while the user typed, if this turn extends it exactly.
  EarlyPrefill early = std::move(early_);
  early_ = EarlyPrefill{};
  if (early.active) {
    const char* why = early.broken                             ? "an image failed or did not fit"
                      : !ans.image_errors.empty()              ? "an image failed"
                      : early.n_images != int(embs.size())     ? "not every image was prefilled"
                      : count_image_placeholders(question) > 0 ? "the question places its images itself"
                      : delta.compare(0, early.text.size(), early.text) != 0
                          ? "the turn does not begin with the prefilled text"
                          : nullptr;
    if (why) {
      ans.prefill_note = std::string("prefill while typing not used: ") + why;
      cache_->restore(early.before);
      early = EarlyPrefill{};
    }
  }
  const bool first = (early.active ? early.before.n_past : cache_->n_past()) == 0;
  std::vector<const ImageEmbeddings*> ptrs;
  if (!early.active)
    for (const auto& e : embs) ptrs.push_back(e.get());
  const std::string rest = early.active ? delta.substr(early.text.size()) : delta;
  VlmPrompt vp = assemble_prompt(engine_->llm(), tok, engine_->markers(), rest, ptrs,
                                 first && !early.active && tok.add_bos_default());
  std::vector<int32_t> history = early.tokens;
  for (int32_t t : vp.text_tokens()) history.push_back(t);
  ans.n_positions = early.n_positions + vp.n_positions;
  ans.positions = early.positions;
  ans.positions.insert(ans.positions.end(), vp.tokens.begin(), vp.tokens.end());
  ans.n_image_positions = early.n_image_positions + vp.n_image_positions;
  ans.n_prefilled_while_typing = early.n_positions;
  ans.prefill_while_typing_ms = early.ms;
  for (const std::string& s : chat_template_stop_strings(tmpl))
    if (std::find(gp.stop_strings.begin(), gp.stop_strings.end(), s) == gp.stop_strings.end())
      gp.stop_strings.push_back(s);

  const KvCache::Checkpoint rollback = early.active ? early.before : cache_->checkpoint();
  if (given) {
    // The answer's tokens as generation would have fed them: tokenized apart from the prompt.
    const std::vector<int32_t> answer = tok.encode(*given, false, false);
    const int n_embd = engine_->llm().config().n_embd;
    vp.embeddings.resize(size_t(vp.n_positions + answer.size()) * n_embd);
    engine_->llm().embed_tokens(answer.data(), int(answer.size()), vp.embeddings.data() + size_t(vp.n_positions) * n_embd);
    vp.n_positions += int(answer.size());
    const int room = cache_->n_ctx() - cache_->n_past();
    if (vp.n_positions >= room) {
      cache_->restore(rollback);
      fail("a past turn of the conversation takes %d positions but the context has %d left of %d",
               vp.n_positions, room, cache_->n_ctx());
    }
    Timer t;
    try {
      prefill_chunked(engine_->llm(), *cache_, vp.embeddings.data(), vp.n_positions, kDefaultPrefillChunk,
                      engine_->pool(), nullptr, vp.image_spans);
    } catch (...) {
      cache_->restore(rollback);
      throw;
    }
    ans.result.prefill_ms = t.elapsed_ms();
    ans.result.n_prompt = early.n_positions + vp.n_positions;
    ans.result.text = *given;
    ans.result.tokens = answer;
    ans.result.stop_reason = StopReason::EndOfGeneration;
  } else {
    ans.result = run_generation(vp, gp, on_text, rollback, history);
  }
  if (ans.result.cancelled_in_prefill) return ans;  // the turn is dropped
  history_ = std::move(msgs);
  history_.push_back({"assistant", ans.result.text});
  rendered_ = full;
  last_answer_ = ans.result.text;
  return ans;
}

GenerateResult Session::complete(const std::vector<int32_t>& prompt, GenerateParams gp, const TextCallback& on_text) {
  EV_CHECK(history_.size() <= (opt_.system_prompt.empty() ? 0u : 1u) && pending_.empty(),
           "this session holds a conversation; reset() it before a raw completion");
  EV_CHECK(!prompt.empty(), "the prompt is empty");
  const int n_vocab = engine_->llm().config().n_vocab;
  for (size_t i = 0; i < prompt.size(); ++i)
    EV_CHECK(prompt[i] >= 0 && prompt[i] < n_vocab, "prompt token %zu has id %d, outside the vocabulary [0, %d)", i,
             prompt[i], n_vocab);
  EV_CHECK(prompt.size() < size_t(cache_->n_ctx() - cache_->n_past()),
           "prompt of %zu tokens does not fit the context (%d of %d positions free)", prompt.size(),
           cache_->n_ctx() - cache_->n_past(), cache_->n_ctx());
  std::lock_guard<std::mutex> lk(state_mu_);
  raw_ = true;
  VlmPrompt vp;
  vp.n_embd = engine_->llm().config().n_embd;
  vp.n_positions = int(prompt.size());
  vp.tokens = prompt;
  vp.embeddings.resize(prompt.size() * size_t(vp.n_embd));
  engine_->llm().embed_tokens(prompt.data(), vp.n_positions, vp.embeddings.data());
  return run_generation(vp, gp, on_text, cache_->checkpoint(), prompt);
}

void Session::set_system_prompt(const std::string& text) {
  std::lock_guard<std::mutex> lk(state_mu_);
  opt_.system_prompt = text;
  if (cache_->n_past() == 0) {
    history_.clear();
    if (!text.empty()) history_.push_back({"system", text});
  }
}

void Session::reset() {
  {
    std::lock_guard<std::mutex> lk(q_mu_);
    for (auto& j : queue_) j->promise.set_exception(std::make_exception_ptr(Error("image dropped by reset")));
    queue_.clear();
  }
  pending_.clear();  // an encode in progress finishes into a future nobody reads
  std::lock_guard<std::mutex> lk(state_mu_);
  ++epoch_;
  early_ = EarlyPrefill{};
  cache_->clear();
  history_.clear();
  if (!opt_.system_prompt.empty()) history_.push_back({"system", opt_.system_prompt});
  rendered_.clear();
  last_answer_.clear();
  raw_ = false;
}

}  // namespace edgevlm
