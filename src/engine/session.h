// A conversation with an Engine, in which image encoding is decoupled from the question
// (BlueLM-V-3B §4: the image is encoded while the user types). attach_image*() check the image and
// return at once; a background thread decodes, tiles, runs the ViT and the projector. ask() waits
// only for what is left of those encodings, then assembles the turn and generates, streaming. The
// KV cache keeps the conversation across ask() calls, so a turn prefills only its own new tokens;
// reset() starts a new one.
//
// Prefill while typing (beyond the paper): the turn's images come before the question (every chat
// template puts the user's images first unless the question places them with <image>), so the
// turn's text up to its last image — the template's user prefix and the image positions — is the
// same whatever the question. The background thread prefills it into the KV cache as soon as each
// image is encoded; ask() then prefills only the question's own tokens. The tokens are exactly
// those of the plain path (the text is cut at image boundaries, where the prompt is tokenized in
// pieces anyway). When the question places its images, an image failed, or the rendered turn does
// not extend what was prefilled, ask() rolls the cache back and takes the plain path
// (SessionAnswer::prefill_note says why).
//
// Threads: a Session is used from one thread at a time, except cancel(), which any thread may call
// while ask() runs. Sessions of one engine are independent and may run concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/vlm.h"
#include "model/chat_template.h"
#include "model/kv_cache.h"
#include "vision/image.h"

namespace edgevlm {

struct SessionOptions {
  int n_ctx = 0;                  // 0: the engine's (EngineOptions::n_ctx)
  std::optional<KvType> kv_type;  // unset: the engine's
  std::string system_prompt;
  bool prefill_while_typing = true;  // see above; false: images are prefilled only at ask()
};

struct SessionAnswer {
  GenerateResult result;
  double wait_ms = 0;      // ask() waiting for the background encodes to finish
  int n_images = 0;        // images this question carried
  int n_tiles = 0;
  std::vector<Grid> grids;  // each image's tile grid
  std::vector<PatchGrid> mrope_grids;  // M-RoPE images (Qwen2-VL): each run's tokens across × down
  double vit_ms = 0;       // their ViT + projector time (mostly spent before ask() when decoupled)
  int n_positions = 0;     // positions this turn prefilled (while typing and at ask())
  std::vector<int32_t> positions;  // those positions in order: token ids, -1 at image positions
  int n_image_positions = 0;
  int n_prefilled_while_typing = 0;  // of n_positions, done in the background before ask()
  double prefill_while_typing_ms = 0;
  std::string prefill_note;  // why a prefill done while typing was not used, when it was not
  // Images whose background decode or encode failed ("NAME: why"); the turn went on without them.
  std::vector<std::string> image_errors;
};

class Session {
 public:
  explicit Session(std::shared_ptr<const Engine> engine, const SessionOptions& opt = {});
  // Cancels queued encodes, waits for the one in progress (an image's encode is not interruptible),
  // and joins the background thread.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Queue an image for the next question. Each checks the image now (file readable, a known
  // format, header and size within limits) and throws edgevlm::Error naming what is wrong, so a
  // bad image is refused at once and the images already attached stay; decoding and encoding then
  // run in the background. Throws too when the engine has no vision model.
  void attach_image(const std::string& path);
  void attach_image_bytes(std::vector<uint8_t> bytes, const std::string& name = "<memory>");
  void attach_image_pixels(Image img, const std::string& name = "<pixels>");
  // An image encoded elsewhere (the server's embedding cache, shared by its sessions): queued like
  // the others, so it keeps its place among the turn's images and is prefilled while typing too.
  using SharedEmbeddings = std::shared_future<std::shared_ptr<const ImageEmbeddings>>;
  void attach_image_embeddings(SharedEmbeddings embeddings, const std::string& name = "<embeddings>");
  // Images attached since the last ask().
  int pending_images() const { return int(pending_.size()); }

  // Waits for the attached images' encodings, appends the user turn (images first, unless the
  // question places them with <image>) and generates the answer, streaming it to on_text.
  // gp.n_predict is capped by the room left in the context (< 0: all of it). The chat template's
  // stop strings are added to gp.stop_strings. Throws edgevlm::Error for a turn that does not fit
  // the context (the conversation is then as before the call). A cancel() during the prefill
  // drops the turn the same way; during decoding, the answer so far is kept.
  SessionAnswer ask(const std::string& question, GenerateParams gp, const TextCallback& on_text = {});

  // A past exchange the caller already holds (an API client resends its whole conversation): the
  // user turn, with the images attached since the last turn, and the assistant's answer go into
  // the cache as if ask() had produced that answer, without generating. result.n_prompt counts
  // the positions added.
  SessionAnswer add_exchange(const std::string& question, const std::string& answer);

  // Raw completion: feeds `prompt` (ids; no chat template, BOS only if included) after what the
  // cache holds and generates. For base models and benchmarks; a session used this way cannot
  // ask() until reset().
  GenerateResult complete(const std::vector<int32_t>& prompt, GenerateParams gp, const TextCallback& on_text = {});

  // Stops a running ask()/complete() within one decode step or prefill chunk; no effect otherwise.
  // Safe from any thread.
  void cancel();

  // Forgets the conversation (and any images not yet asked about).
  void reset();
  // The system message of the conversation: now when nothing has been asked yet, else after reset().
  void set_system_prompt(const std::string& text);

  int n_past() const;  // positions in the KV cache
  int n_ctx() const;
  KvType kv_type() const;
  const Engine& engine() const { return *engine_; }

 private:
  struct Job {
    uint64_t epoch = 0;  // the conversation it belongs to (reset() starts a new one)
    std::string name;
    std::vector<uint8_t> bytes;  // encoded image, or
    Image pixels;                // decoded pixels, or
    SharedEmbeddings encoded;    // embeddings made elsewhere
    std::promise<std::shared_ptr<const ImageEmbeddings>> promise;
  };
  void enqueue(std::shared_ptr<Job> job);
  void worker_main();
  // Marks the start/end of a generation so that cancel() reaches only a running one.
  void begin_run();
  void end_run();
  // Generates from vp (appended to the cache); on an error or a cancel during the prefill the
  // cache goes back to `rollback`.
  GenerateResult run_generation(const VlmPrompt& vp, GenerateParams gp, const TextCallback& on_text,
                                const KvCache::Checkpoint& rollback, const std::vector<int32_t>& history);
  // The text this turn adds to the cache for a user message `content`: the whole rendering on the
  // first turn, else what follows the previous answer. full/msgs: the rendered conversation and
  // its messages with the turn.
  std::string turn_delta(const std::string& content, std::string* full = nullptr,
                         std::vector<ChatMessage>* msgs = nullptr) const;
  // ask() and add_exchange(): the turn, then a generated answer or, when `given` is set, that one.
  SessionAnswer run_turn(const std::string& question, GenerateParams gp, const TextCallback& on_text,
                         const std::string* given);
  // The background half of prefill while typing: extends the cache by the turn's text up to the
  // end of the next image and that image. Called with state_mu_ held.
  void prefill_next_image(const ImageEmbeddings& e);

  std::shared_ptr<const Engine> engine_;
  SessionOptions opt_;
  std::unique_ptr<KvCache> cache_;

  // Conversation so far, rendered: the KV cache holds exactly the tokens of rendered_ (with the
  // image embeddings at its placeholders) followed by the last answer's tokens.
  std::vector<ChatMessage> history_;
  std::string rendered_;
  std::string last_answer_;
  bool raw_ = false;  // complete() was used

  struct Pending {
    std::string name;
    std::future<std::shared_ptr<const ImageEmbeddings>> embeddings;
  };
  std::vector<Pending> pending_;

  // The turn's part prefilled while typing (see above).
  struct EarlyPrefill {
    bool active = false;   // the cache holds part of the coming turn
    bool broken = false;   // an image failed or did not fit: ask() rolls back
    KvCache::Checkpoint before;
    int n_images = 0;      // images covered
    std::string text;      // the turn's text up to the end of the last covered image placeholder
    std::vector<int32_t> tokens;  // its text tokens (the repetition penalty's history)
    std::vector<int32_t> positions;  // its positions: token ids, -1 at image positions
    int n_positions = 0, n_image_positions = 0;
    double ms = 0;
  };
  EarlyPrefill early_;
  uint64_t epoch_ = 0;    // bumped by reset()
  std::mutex state_mu_;   // the cache and the conversation: background prefill vs ask/reset/complete

  std::mutex run_mu_;
  bool running_ = false;
  std::atomic<bool> cancel_{false};

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace edgevlm
