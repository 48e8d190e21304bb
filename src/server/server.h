// `edgevlm serve`: an OpenAI-compatible HTTP server, a thin layer over the engine (engine.h). Each of
// its N slots is a Session with its own KV cache; a request is queued for a slot (429 when the
// queue is full), runs there and frees it. Beyond the protocol:
//   - decoupled upload (BlueLM-V-3B §4 over HTTP): POST /v1/images starts encoding at once and
//     returns an id; a chat message naming the id waits only for what is left of the encode;
//   - image cache: embeddings by content hash, shared by all slots (image_cache.h);
//   - prompt cache: a request that continues a slot's conversation (the messages it holds are a
//     prefix of the request's) is sent to that slot and prefills only its new turn;
//   - GET /metrics in Prometheus' text format, GET / a chat page (web/index.html).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "server/openai_api.h"

namespace httplib {
class Server;
}

namespace edgevlm {

class ImageCache;
class Session;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (port() tells which)
  int slots = 1;          // concurrent conversations, each with its own KV cache
  int queue = 16;         // requests waiting for a slot beyond which new ones get 429
  std::string api_key;    // required (Authorization: Bearer KEY) when set
  std::string model_name; // the id /v1/models lists; default: the model file's name
  size_t image_cache_bytes = 256u << 20;
  size_t max_body_bytes = 32u << 20;
  int request_timeout_s = 30;  // to receive a whole request (headers and body): slow clients get 408
  int idle_timeout_s = 5;      // keep-alive and per-read inactivity
  int drain_timeout_s = 30;    // on shutdown, in-flight answers get this long to finish, then are cancelled
  int http_threads = 64;       // connections handled at once (waiting, slow or streaming)
  SamplerParams sampling;      // defaults for requests that do not set them
  RequestLimits limits;
};

class Server {
 public:
  Server(std::shared_ptr<const Engine> engine, ServerOptions opt);
  ~Server();
  // Binds (throws edgevlm::Error naming the address when it cannot) and serves until shutdown().
  void bind();
  void serve();
  int port() const { return port_; }
  // From any thread (a signal watcher): stops taking requests (503), lets in-flight answers finish
  // for drain_timeout_s, cancels what is left, then makes serve() return.
  void shutdown();

 private:
  struct Slot;
  struct Ticket;
  class Handlers;
  friend class Handlers;

  std::shared_ptr<const Engine> engine_;
  ServerOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<ImageCache> images_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Handlers> handlers_;
  int port_ = 0;
};

}  // namespace edgevlm
