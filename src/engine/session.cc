#include "engine/session.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/timer.h"
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

void Session::enqueue(std::shared_ptr<Job> job) {
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
      Timer t;
      Image img = job->bytes.empty() ? std::move(job->pixels)
                                     : load_image_from_memory(job->bytes.data(), job->bytes.size(), {}, job->name);
      job->bytes = {};
      const double decode_ms = t.elapsed_ms();
      auto e = std::make_shared<ImageEmbeddings>(engine_->encode(img, job->name));
      e->preprocess_ms += decode_ms;
      job->promise.set_value(std::move(e));
    } catch (...) {
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

// Generates from a prompt that extends the cache; on an error or a cancel during the prefill the
// cache goes back to where it was (a checkpoint, which also covers LFM2's convolution state).
GenerateResult Session::run_generation(const VlmPrompt& vp, GenerateParams gp, const TextCallback& on_text) {
  const int room = cache_->n_ctx() - cache_->n_past();
  EV_CHECK(vp.n_positions < room,
           "this turn takes %d positions (%d of them image) but the context has %d left of %d; reset the "
           "conversation, use fewer tiles or a larger context",
           vp.n_positions, vp.n_image_positions, room, cache_->n_ctx());
  // Capped by the room left; an answer that stops there ends for want of context.
  const bool capped = gp.n_predict < 0 || gp.n_predict > room - vp.n_positions;
  gp.n_predict = capped ? room - vp.n_positions : gp.n_predict;
  gp.cancel = &cancel_;
  const KvCache::Checkpoint before = cache_->checkpoint();
  Generator gen(engine_->llm(), engine_->tokenizer(), *cache_, engine_->pool());
  GenerateResult r;
  begin_run();
  try {
    r = gen.generate_from_embeddings(vp.embeddings.data(), vp.n_positions, gp, on_text, vp.text_tokens());
  } catch (...) {
    end_run();
    cache_->restore(before);
    throw;
  }
  end_run();
  if (r.cancelled_in_prefill) cache_->restore(before);
  if (capped && r.stop_reason == StopReason::MaxTokens) r.stop_reason = StopReason::ContextFull;
  return r;
}

SessionAnswer Session::ask(const std::string& question, GenerateParams gp, const TextCallback& on_text) {
  EV_CHECK(!raw_, "this session was used for raw completion; reset() it before chatting");
  SessionAnswer ans;
  // Wait for the encodes; an image that failed is left out of the turn and reported.
  std::vector<std::shared_ptr<ImageEmbeddings>> embs;
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
    ans.vit_ms += e->vit_ms + e->projector_ms;
  }

  // The new turn's text: what the full conversation renders to beyond what the cache already holds.
  const ChatTemplate tmpl = engine_->chat_template();
  std::vector<ChatMessage> msgs = history_;
  msgs.push_back({"user", add_image_placeholders(question, int(embs.size()))});
  const std::string full = apply_chat_template(tmpl, msgs, true);
  std::string delta;
  const bool first = cache_->n_past() == 0;
  if (first) {
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

  std::vector<const ImageEmbeddings*> ptrs;
  for (const auto& e : embs) ptrs.push_back(e.get());
  const Tokenizer& tok = engine_->tokenizer();
  VlmPrompt vp = assemble_prompt(engine_->llm(), tok, engine_->markers(), delta, ptrs, first && tok.add_bos_default());
  ans.n_positions = vp.n_positions;
  ans.n_image_positions = vp.n_image_positions;
  for (const std::string& s : chat_template_stop_strings(tmpl))
    if (std::find(gp.stop_strings.begin(), gp.stop_strings.end(), s) == gp.stop_strings.end())
      gp.stop_strings.push_back(s);

  ans.result = run_generation(vp, gp, on_text);
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
  raw_ = true;
  VlmPrompt vp;
  vp.n_embd = engine_->llm().config().n_embd;
  vp.n_positions = int(prompt.size());
  vp.tokens = prompt;
  vp.embeddings.resize(prompt.size() * size_t(vp.n_embd));
  engine_->llm().embed_tokens(prompt.data(), vp.n_positions, vp.embeddings.data());
  return run_generation(vp, gp, on_text);
}

void Session::set_system_prompt(const std::string& text) {
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
  cache_->clear();
  history_.clear();
  if (!opt_.system_prompt.empty()) history_.push_back({"system", opt_.system_prompt});
  rendered_.clear();
  last_answer_.clear();
  raw_ = false;
}

}  // namespace edgevlm
