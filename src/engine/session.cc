#include "engine/session.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "core/error.h"
#include "core/pages.h"
#include "core/timer.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "vision/image.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

constexpr int kDefaultMaxCtx = 4096;

std::string trim_ws(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

Session::Session(const SessionOptions& opt) : opt_(opt) {
  pool_ = std::make_unique<ThreadPool>(opt.threads > 0 ? opt.threads : ThreadPool::hardware_threads());
  llm_file_ = GGUFFile::open(opt.model_path);
  // Weights repacked now, except in low-memory mode: there on first use, after the first encode.
  llm_ = LlmModel::load(*llm_file_, opt.low_memory ? nullptr : pool_.get());
  tok_ = Tokenizer::from_gguf(*llm_file_);
  {
    auto mm_file = GGUFFile::open(opt.mmproj_path);
    auto mm = MmprojModel::load(*mm_file);
    vc_ = mm->config();
    if (!opt.low_memory) {
      mm_file_ = std::move(mm_file);
      mm_ = std::move(mm);
    }
  }
  const LlmConfig& cfg = llm_->config();
  EV_CHECK(vc_.projection_dim == cfg.n_embd, "%s projects to width %d but %s has width %d: not a matching pair",
           opt.mmproj_path.c_str(), vc_.projection_dim, opt.model_path.c_str(), cfg.n_embd);
  tcfg_ = tiling_config_for(vc_, opt.tiling);
  markers_ = image_markers(vc_, *tok_);
  tmpl_ = chat_template_for(opt.chat_template, *llm_file_);
  const int n_ctx = opt.n_ctx > 0 ? opt.n_ctx
                                  : std::min(cfg.n_ctx_train > 0 ? cfg.n_ctx_train : kDefaultMaxCtx, kDefaultMaxCtx);
  cache_ = std::make_unique<KvCache>(cfg, n_ctx, opt.kv_type);
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
  auto job = std::make_shared<Job>();
  job->path = path;
  pending_.push_back(job->promise.get_future());
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
      job->promise.set_value(std::make_shared<ImageEmbeddings>(encode(job->path)));
    } catch (...) {
      job->promise.set_exception(std::current_exception());
    }
  }
}

ImageEmbeddings Session::encode(const std::string& path) {
  Timer t;
  Image img = load_image(path);
  const double load_ms = t.elapsed_ms();
  std::lock_guard<std::mutex> lk(pool_mu_);
  ImageEmbeddings e;
  if (opt_.low_memory) {
    drop_llm_pages();
    auto f = GGUFFile::open(opt_.mmproj_path);  // unmapped when this scope ends
    auto mm = MmprojModel::load(*f);
    e = encode_image(*mm, img, tcfg_, *pool_, VitOptions(opt_.vit_batch, opt_.vit_pipeline));
  } else {
    e = encode_image(*mm_, img, tcfg_, *pool_, VitOptions(opt_.vit_batch, opt_.vit_pipeline));
  }
  e.preprocess_ms += load_ms;
  return e;
}

// The LLM's matrices are views into its file mapping; dropping those pages from this process
// (they stay in the page cache and fault back in on use) takes them out of RSS during an encode.
void Session::drop_llm_pages() const {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (const GGUFTensorInfo& t : llm_file_->tensors()) {
    if (!t.data || t.nbytes == 0) continue;
    lo = std::min(lo, uintptr_t(t.data));
    hi = std::max(hi, uintptr_t(t.data) + t.nbytes);
  }
  // Whole pages inside the tensor data only (the header pages before it stay), and only from a
  // read-only file mapping: a file read into memory is left alone.
  if (lo < hi) release_file_pages(reinterpret_cast<const void*>(lo), hi - lo);
}

SessionAnswer Session::ask(const std::string& question, GenerateParams gp, const TextCallback& on_text) {
  SessionAnswer ans;
  // Wait for the encodes; a failure drops this turn's images and leaves the conversation as it was.
  std::vector<std::shared_ptr<ImageEmbeddings>> embs;
  {
    Timer wait;
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& f : pending) embs.push_back(f.get());  // rethrows the encode's error
    ans.wait_ms = wait.elapsed_ms();
  }
  ans.n_images = int(embs.size());
  for (const auto& e : embs) {
    ans.n_tiles += e->n_tiles;
    ans.vit_ms += e->vit_ms + e->projector_ms;
  }

  // The new turn's text: what the full conversation renders to beyond what the cache already holds.
  std::vector<ChatMessage> msgs = history_;
  msgs.push_back({"user", add_image_placeholders(question, int(embs.size()))});
  const std::string full = apply_chat_template(tmpl_, msgs, true);
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
      const std::string closed = apply_chat_template(tmpl_, history_, false);
      EV_CHECK(full.compare(0, closed.size(), closed) == 0, "chat template %s: a turn does not extend the conversation",
               chat_template_name(tmpl_));
      const std::string a = trim_ws(last_answer_);
      const size_t at = a.empty() ? std::string::npos : closed.rfind(a);
      delta = (at == std::string::npos ? std::string() : closed.substr(at + a.size())) + full.substr(closed.size());
    }
  }

  std::vector<const ImageEmbeddings*> ptrs;
  for (const auto& e : embs) ptrs.push_back(e.get());
  VlmPrompt vp = assemble_prompt(*llm_, *tok_, markers_, delta, ptrs, first && tok_->add_bos_default());
  const int room = cache_->n_ctx() - cache_->n_past();
  EV_CHECK(vp.n_positions < room,
           "this turn takes %d positions (%d of them image) but the context has %d left of %d; /reset the "
           "conversation, use fewer tiles or a larger context",
           vp.n_positions, vp.n_image_positions, room, cache_->n_ctx());
  gp.n_predict = gp.n_predict < 0 ? room - vp.n_positions : std::min(gp.n_predict, room - vp.n_positions);
  for (const std::string& s : chat_template_stop_strings(tmpl_))
    if (std::find(gp.stop_strings.begin(), gp.stop_strings.end(), s) == gp.stop_strings.end())
      gp.stop_strings.push_back(s);

  const int n_past_before = cache_->n_past();
  std::lock_guard<std::mutex> lk(pool_mu_);
  Generator gen(*llm_, *tok_, *cache_, *pool_);
  try {
    ans.result = gen.generate_from_embeddings(vp.embeddings.data(), vp.n_positions, gp, on_text, vp.text_tokens());
  } catch (...) {
    cache_->truncate(n_past_before);
    throw;
  }
  history_ = std::move(msgs);
  history_.push_back({"assistant", ans.result.text});
  rendered_ = full;
  last_answer_ = ans.result.text;
  return ans;
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
}

}  // namespace edgevlm
