// The engine: the one place that owns the pipeline "open the pair → encode images → assemble the
// prompt → generate". Every command, the C API (include/edgevlm.h) and the server are thin layers
// over these two classes:
//
//   auto engine = Engine::load({.model_path = "m.gguf", .mmproj_path = "mmproj.gguf"});
//   Session chat(engine);
//   chat.attach_image("photo.jpg");            // decoding and encoding start now, in the background
//   chat.ask("What is written here?", gp, [](std::string_view piece) { print(piece); return true; });
//
// Engine holds what sessions share: the mapped files, the decoder, the tokenizer, the vision model
// and the thread pool. It is immutable after load, so any number of sessions (each with its own KV
// cache and conversation) may use one engine from different threads; they share the pool, whose
// jobs run one at a time, so concurrent sessions interleave operation by operation.
//
// Low-memory mode (BlueLM-V-3B keeps ViT and LLM apart on the phone for the same reason): the mmproj
// is mapped only while an image is encoded (opened, loaded, encoded, unmapped), and the LLM's weight
// pages are dropped before each encode (madvise; they fault back in from the file), so peak RSS is
// close to max(ViT, LLM) plus activations instead of their sum. It costs the mmproj's load per image
// and the LLM's page-in on the turn after an image; the LLM's one-time repack is done on first use.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "engine/vlm.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "model/lora.h"

namespace edgevlm {

class GGUFFile;
class LlmModel;
class Tokenizer;
class MmprojModel;

inline constexpr int kDefaultMaxCtx = 4096;

// Something that takes long enough to report: loading a file, encoding an image's tiles.
struct Progress {
  const char* stage;  // "load-model", "load-mmproj", "encode"
  const std::string& what;  // the file or image
  double fraction;    // 0 at the start, 1 when done
};
using ProgressCallback = std::function<void(const Progress&)>;

struct EngineOptions {
  std::string model_path;
  std::string mmproj_path;  // empty: a text-only engine
  int threads = 0;          // 0: hardware threads
  int n_ctx = 0;            // sessions' context (0: the model's context length, at most kDefaultMaxCtx)
  KvType kv_type = kDefaultKvType;
  TilingOverrides tiling;
  int vit_batch = kDefaultVitBatch;
  bool vit_pipeline = kDefaultVitPipeline;  // prepare the next ViT batch while one runs (vit.h)
  std::string chat_template = "auto";       // a name chat_template_for knows, or "auto"
  bool low_memory = false;
  // LoRA adapters (--lora FILE[:SCALE], model/lora.h), applied in this order: on the decoder, or on
  // the ViT and projector for an adapter whose general.architecture is "clip" (it names the mmproj's
  // tensors). lora_mode Auto merges them into F32 matrices and applies them on the fly elsewhere;
  // in low-memory mode they are always applied on the fly (a merged copy could not be dropped).
  std::vector<LoraAdapterSpec> loras;
  LoraMode lora_mode = LoraMode::Auto;
  std::string vit_compat;  // MmprojLoadOptions::vit_compat: "mtmd" or "" (the model authors' ViT)
  ProgressCallback progress;  // called on the thread doing the work; may be empty
};

class Engine {
 public:
  // Opens and validates both files. Throws edgevlm::Error on a bad file or a mismatched pair.
  static std::shared_ptr<Engine> load(const EngineOptions& opt);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const { return opt_; }
  const GGUFFile& llm_file() const { return *llm_file_; }
  const LlmModel& llm() const { return *llm_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  bool has_vision() const { return has_vision_; }
  const VisionConfig& vision_config() const { return vc_; }  // meaningful when has_vision()
  const TilingConfig& tiling() const { return tcfg_; }
  const ImageMarkers& markers() const { return markers_; }
  ChatTemplate chat_template() const { return tmpl_; }
  // True when the file's tokenizer.chat_template was not recognised (the prompt is then used as is).
  bool chat_template_unknown() const { return tmpl_unknown_; }
  int default_n_ctx() const { return n_ctx_; }
  double load_ms() const { return load_ms_; }
  ThreadPool& pool() const { return *pool_; }

  // Dynamic resolution → ViT → projector for one decoded image, on the engine's pool. Throws
  // edgevlm::Error when the engine has no vision model.
  ImageEmbeddings encode(const Image& img, const std::string& name = "image") const;

 private:
  explicit Engine(const EngineOptions& opt);
  void drop_llm_pages() const;
  std::vector<const LoraAdapter*> vision_loras() const;

  EngineOptions opt_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<GGUFFile> llm_file_, mm_file_;
  std::unique_ptr<LlmModel> llm_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<MmprojModel> mm_;  // null without vision and in low-memory mode (loaded per encode)
  std::vector<std::unique_ptr<LoraAdapter>> vision_loras_;  // kept open: low-memory mode reloads the mmproj
  bool has_vision_ = false;
  VisionConfig vc_;
  TilingConfig tcfg_;
  ImageMarkers markers_;
  ChatTemplate tmpl_ = ChatTemplate::None;
  bool tmpl_unknown_ = false;
  int n_ctx_ = 0;
  double load_ms_ = 0;
  mutable std::mutex low_memory_mu_;  // one mmproj mapping at a time in low-memory mode
};

}  // namespace edgevlm
