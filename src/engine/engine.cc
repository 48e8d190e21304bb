#include "engine/engine.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "core/pages.h"
#include "core/timer.h"
#include "formats/gguf.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "vision/image.h"
#include "vision/mmproj.h"

namespace edgevlm {

std::shared_ptr<Engine> Engine::load(const EngineOptions& opt) {
  return std::shared_ptr<Engine>(new Engine(opt));
}

Engine::Engine(const EngineOptions& opt) : opt_(opt) {
  Timer timer;
  EV_CHECK(!opt.model_path.empty(), "no language model file given");
  EV_CHECK(opt.threads >= 0, "threads must be 0 (all hardware threads) or more, got %d", opt.threads);
  EV_CHECK(opt.n_ctx >= 0, "the context size must be 0 (the model's) or more, got %d", opt.n_ctx);
  auto report = [&](const char* stage, const std::string& what, double f) {
    if (opt_.progress) opt_.progress(Progress{stage, what, f});
  };
  pool_ = std::make_unique<ThreadPool>(opt.threads > 0 ? opt.threads : ThreadPool::hardware_threads());

  report("load-model", opt.model_path, 0);
  llm_file_ = GGUFFile::open(opt.model_path);
  // Weights repacked now, except in low-memory mode: there on first use, after the first encode.
  {
    std::vector<std::unique_ptr<LoraAdapter>> adapters;  // closed once applied
    std::vector<const LoraAdapter*> ptrs;
    for (const LoraAdapterSpec& spec : opt.loras) {
      std::unique_ptr<LoraAdapter> a = LoraAdapter::open(spec.path, spec.scale);
      if (a->arch() == "clip") {  // the vision model's (applied when it is loaded)
        EV_CHECK(!opt.mmproj_path.empty(), "%s: a LoRA adapter for the vision model (general.architecture clip), "
                 "but no vision model (--mmproj) was given", spec.path.c_str());
        vision_loras_.push_back(std::move(a));
        continue;
      }
      adapters.push_back(std::move(a));
      ptrs.push_back(adapters.back().get());
    }
    llm_ = LlmModel::load(*llm_file_, opt.low_memory ? nullptr : pool_.get(), ptrs,
                          opt.low_memory ? LoraMode::OnTheFly : opt.lora_mode);
  }
  tok_ = Tokenizer::from_gguf(*llm_file_);
  const LlmConfig& cfg = llm_->config();
  EV_CHECK(tok_->n_vocab() <= cfg.n_vocab, "%s: tokenizer has %d tokens but the model's vocabulary is %d",
           opt.model_path.c_str(), tok_->n_vocab(), cfg.n_vocab);
  report("load-model", opt.model_path, 1);

  if (!opt.mmproj_path.empty()) {
    report("load-mmproj", opt.mmproj_path, 0);
    auto mm_file = GGUFFile::open(opt.mmproj_path);
    auto mm = MmprojModel::load(*mm_file, {opt.vit_compat}, vision_loras(),
                                opt.low_memory ? LoraMode::OnTheFly : opt.lora_mode);
    vc_ = mm->config();
    has_vision_ = true;
    if (!opt.low_memory) {
      mm_file_ = std::move(mm_file);
      mm_ = std::move(mm);
    }
    EV_CHECK(vc_.projection_dim == cfg.n_embd, "%s projects to width %d but %s has width %d: not a matching pair",
             opt.mmproj_path.c_str(), vc_.projection_dim, opt.model_path.c_str(), cfg.n_embd);
    tcfg_ = tiling_config_for(vc_, opt.tiling);
    markers_ = image_markers(vc_, *tok_, tcfg_.strategy);
    report("load-mmproj", opt.mmproj_path, 1);
  }
  tmpl_ = chat_template_for(opt.chat_template, *llm_file_, &tmpl_unknown_);
  n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx
                         : std::min(cfg.n_ctx_train > 0 ? cfg.n_ctx_train : kDefaultMaxCtx, kDefaultMaxCtx);
  load_ms_ = timer.elapsed_ms();
}

Engine::~Engine() = default;

std::vector<const LoraAdapter*> Engine::vision_loras() const {
  std::vector<const LoraAdapter*> v;
  for (const auto& a : vision_loras_) v.push_back(a.get());
  return v;
}

ImageEmbeddings Engine::encode(const Image& img, const std::string& name) const {
  EV_CHECK(has_vision_, "%s: this model has no vision part (load it with an mmproj file to use images)",
           name.c_str());
  const VitOptions vit(opt_.vit_batch, opt_.vit_pipeline);
  if (opt_.progress) opt_.progress(Progress{"encode", name, 0});
  ImageEmbeddings e;
  if (opt_.low_memory) {
    std::lock_guard<std::mutex> lk(low_memory_mu_);
    drop_llm_pages();
    auto f = GGUFFile::open(opt_.mmproj_path);  // unmapped when this scope ends
    auto mm = MmprojModel::load(*f, {opt_.vit_compat}, vision_loras(), LoraMode::OnTheFly);
    e = encode_image(*mm, img, tcfg_, *pool_, vit);
  } else {
    e = encode_image(*mm_, img, tcfg_, *pool_, vit);
  }
  if (opt_.progress) opt_.progress(Progress{"encode", name, 1});
  return e;
}

// The LLM's matrices are views into its file mapping; dropping those pages from this process
// (they stay in the page cache and fault back in on use) takes them out of RSS during an encode.
void Engine::drop_llm_pages() const {
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

}  // namespace edgevlm
