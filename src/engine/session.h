// A conversation with a vision-language model pair in which image encoding is decoupled from the
// question (BlueLM-V-3B §4: the image is encoded while the user types). attach_image() returns at
// once and a background thread decodes, tiles, runs the ViT and the projector; ask() waits only
// for what is left of those encodings, then assembles the prompt and generates. The KV cache keeps
// the conversation across ask() calls; reset() starts a new one.
//
// Threads: one ThreadPool, shared by the background encode and generation, but never used by both
// at once. ask() needs every attached image's embeddings before its prefill, so it joins the
// pending encodes first; a mutex (pool_mu_) around each use makes that a guarantee rather than a
// consequence of call order (e.g. attach_image() from another thread during ask() just queues).
// While the user types nothing else runs, so the encode gets every thread of the pool; two pools
// would only split the cores between two jobs that never overlap.
//
// Low-memory mode: the mmproj GGUF is mapped only while an image is encoded (opened, loaded,
// encoded, unmapped), and the LLM's weight pages are dropped (madvise MADV_DONTNEED; they are
// read back from the file on the next use) before an encode, so peak RSS is close to
// max(ViT, LLM) plus activations instead of their sum. It costs the mmproj load per image and
// the LLM's page-in per turn that has an image.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "engine/generate.h"
#include "engine/vlm.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"

namespace edgevlm {

class GGUFFile;
class LlmModel;
class Tokenizer;
class MmprojModel;

struct SessionOptions {
  std::string model_path, mmproj_path;
  int threads = 0;        // 0: hardware threads
  int n_ctx = 0;          // 0: the model's context length, at most 4096
  KvType kv_type = kDefaultKvType;
  TilingOverrides tiling;
  int vit_batch = kDefaultVitBatch;
  bool vit_pipeline = kDefaultVitPipeline;  // prepare the next ViT batch while one runs (vit.h)
  std::string chat_template = "auto";  // chatml | llama3 | none | auto
  std::string system_prompt;
  bool low_memory = false;
};

struct SessionAnswer {
  GenerateResult result;
  double wait_ms = 0;      // ask() waiting for the background encodes to finish
  int n_images = 0;        // images this question carried
  int n_tiles = 0;
  double vit_ms = 0;       // their ViT + projector time (mostly spent before ask() when decoupled)
};

class Session {
 public:
  // Loads both files. Throws edgevlm::Error on a bad file or a mismatched pair.
  explicit Session(const SessionOptions& opt);
  // Cancels queued encodes, waits for the one in progress (an image's encode is not interruptible),
  // and joins the background thread.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Queues the image for the next question and returns at once; decoding and encoding start on the
  // background thread immediately. Errors (unreadable file, bad image) surface at the next ask().
  void attach_image(const std::string& path);
  // Images attached since the last ask().
  int pending_images() const { return int(pending_.size()); }

  // Waits for the attached images' encodings, appends the user turn (images first, unless the
  // question places them with <image>) and generates the answer, streaming it to on_text.
  // gp.n_predict is capped by the room left in the context. gp.stop_strings gets the chat
  // template's stop strings added. Throws edgevlm::Error for a failed encode (the turn is then
  // dropped: the cache is as before the call) or a turn that does not fit the context.
  SessionAnswer ask(const std::string& question, GenerateParams gp, const TextCallback& on_text = {});

  // Forgets the conversation (and any images not yet asked about).
  void reset();

  int n_past() const;  // positions in the KV cache
  int n_ctx() const;
  KvType kv_type() const;  // the cache's storage type (SessionOptions::kv_type)
  ChatTemplate chat_template() const { return tmpl_; }
  const LlmModel& llm() const { return *llm_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  ThreadPool& pool() { return *pool_; }

 private:
  struct Job {
    std::string path;
    std::promise<std::shared_ptr<ImageEmbeddings>> promise;
  };
  void worker_main();
  ImageEmbeddings encode(const std::string& path);
  void drop_llm_pages() const;

  SessionOptions opt_;
  std::unique_ptr<GGUFFile> llm_file_, mm_file_;
  std::unique_ptr<LlmModel> llm_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<MmprojModel> mm_;  // null in low-memory mode (loaded per encode)
  VisionConfig vc_;
  TilingConfig tcfg_;
  ImageMarkers markers_;
  ChatTemplate tmpl_ = ChatTemplate::None;
  std::unique_ptr<ThreadPool> pool_;
  std::mutex pool_mu_;
  std::unique_ptr<KvCache> cache_;

  // Conversation so far, rendered: the KV cache holds exactly the tokens of rendered_ (with the
  // image embeddings at its placeholders) followed by the last answer's tokens.
  std::vector<ChatMessage> history_;
  std::string rendered_;
  std::string last_answer_;

  std::vector<std::future<std::shared_ptr<ImageEmbeddings>>> pending_;

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace edgevlm
