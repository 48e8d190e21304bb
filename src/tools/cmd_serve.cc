// `edgevlm serve`: the OpenAI-compatible HTTP server (src/server/server.h) over one engine.
// SIGTERM or SIGINT: stop taking requests, let in-flight answers finish (--drain-timeout), exit 0.
#include <CLI/CLI.hpp>

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <thread>

#include "core/error.h"
#include "engine/engine.h"
#include "server/server.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace edgevlm {
namespace {

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

int serve_main(int argc, char** argv) {
  CLI::App app{"Serve a GGUF model (and its mmproj) over HTTP with OpenAI's chat-completions API:\n"
               "  POST /v1/chat/completions   messages with text and image_url parts (data: URIs or uploaded ids)\n"
               "  POST /v1/images             upload an image; encoding starts at once; returns its id\n"
               "  GET  /v1/models, /health, /metrics (Prometheus), /  (a chat page)\n"
               "See docs/SERVER.md.",
               "edgevlm serve"};
  EngineFlags ef;
  ServerOptions so;
  int image_cache_mb = 256, max_body_mb = 32;
  add_engine_options(app, ef, VisionFlags::Optional);
  add_sampling_options(app, so.sampling);
  app.add_option("--host", so.host, "Address to listen on (a non-loopback address needs --api-key)")
      ->capture_default_str();
  app.add_option("--port", so.port, "Port (0: any free port, printed at start)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--slots", so.slots, "Conversations answered at once, each with its own KV cache")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--queue", so.queue, "Requests that may wait for a slot; more get 429")->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--api-key", so.api_key, "Require Authorization: Bearer KEY");
  app.add_option("--model-name", so.model_name, "The model id /v1/models reports (default: the file name)");
  app.add_option("--image-cache-mb", image_cache_mb, "Image embeddings kept (least recently used out)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 20));
  app.add_option("--max-body-mb", max_body_mb, "Largest request body")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-tokens", so.limits.max_tokens, "Most tokens one answer may ask for (and the default)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-images", so.limits.max_images, "Most images in one request")->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--max-image-pixels", so.limits.max_image_pixels, "Largest image (width x height)")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 32));
  app.add_option("--request-timeout", so.request_timeout_s, "Seconds to receive a whole request body (then 408)")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--idle-timeout", so.idle_timeout_s, "Seconds a connection may sit idle")->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--http-threads", so.http_threads, "Connections handled at once (waiting, streaming or slow)")
      ->capture_default_str()->check(CLI::Range(4, 4096));
  app.add_option("--drain-timeout", so.drain_timeout_s, "On SIGTERM, seconds in-flight answers get to finish")
      ->capture_default_str()->check(CLI::Range(0, 3600));
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  so.image_cache_bytes = size_t(image_cache_mb) << 20;
  so.max_body_bytes = size_t(max_body_mb) << 20;
  so.limits.max_image_bytes = std::min(so.limits.max_image_bytes, so.max_body_bytes);
  EV_CHECK(is_loopback(so.host) || !so.api_key.empty(),
           "--host %s is reachable from other machines: set --api-key KEY (or listen on 127.0.0.1)", so.host.c_str());

  // Signals go to one thread that waits for them; the others never see them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto engine = Engine::load(finish_engine_options(ef));
  Server server(engine, so);
  server.bind();
  std::fprintf(stderr, "edgevlm serve: listening on http://%s:%d (%d slot%s%s)\n", so.host.c_str(), server.port(),
               so.slots, so.slots == 1 ? "" : "s", engine->has_vision() ? ", vision" : "");
  std::fflush(stderr);
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == 0) return;
    std::fprintf(stderr, "edgevlm serve: %s, finishing in-flight answers\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.shutdown();
  });
  server.serve();
  // serve() returns after shutdown(); a listen failure leaves the watcher waiting: wake it.
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  std::fprintf(stderr, "edgevlm serve: stopped\n");
  return 0;
}

}  // namespace

EDGEVLM_COMMAND(serve, "serve", "OpenAI-compatible HTTP server with images, decoupled uploads and caches", serve_main);

}  // namespace edgevlm
