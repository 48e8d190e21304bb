#include "server/server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/pages.h"
#include "core/timer.h"
#include "engine/session.h"
#include "model/llm.h"
#include "server/image_cache.h"

namespace edgevlm {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kDrainBytes = 64u << 20;  // see read_body()

const char kIndexHtml[] =
#include "index_html.inc"
    ;

// What a conversation turn is, for matching a request against what a slot's KV cache holds.
std::string turn_key(const std::string& role, const std::string& text, const std::vector<std::string>& image_ids) {
  std::string k = role;
  k += '\x1f';
  k += text;
  for (const auto& id : image_ids) k += '\x1f' + id;
  return k;
}

std::string random_hex(int n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += kHex[rng() & 15];
  return s;
}

uint64_t random_seed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.to_json().dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  ApiError e;
  e.status = status;
  e.type = type;
  e.message = message;
  send_error(res, e);
}

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

}  // namespace

struct Server::Slot {
  int index = 0;
  std::unique_ptr<Session> session;
  std::vector<std::string> held;  // turn keys of the conversation in the session's KV cache
  bool busy = false;
  uint64_t last_used = 0;
};

class Server::Handlers {
 public:
  explicit Handlers(Server& s) : s_(s) {}
  void install(httplib::Server& http);
  void shutdown();

 private:
  // A slot held by one request; freed when the last copy goes (the response's content provider
  // may outlive the handler).
  struct Lease {
    Handlers* h;
    Slot* slot;
    ~Lease() { h->release(slot); }
  };
  bool authorized(const httplib::Request& req, httplib::Response& res);
  bool read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
                 std::string* body);
  // Waits for a slot, first come first served; prefers the one whose conversation the request
  // continues (longest matching prefix), else the least recently used.
  std::shared_ptr<Lease> acquire(const std::vector<std::string>& keys, int n_prior);
  void release(Slot* slot);
  void chat_completions(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void upload_image(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  std::string metrics_text();

  Server& s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint64_t> waiting_;  // tickets in arrival order
  uint64_t next_ticket_ = 0;
  uint64_t use_counter_ = 0;
  int active_ = 0;  // requests holding a slot
  bool draining_ = false;
  Clock::time_point started_ = Clock::now();

  // Counters for /metrics.
  std::atomic<uint64_t> requests_{0}, rejected_{0}, failed_{0}, cancelled_{0};
  std::atomic<uint64_t> prompt_tokens_{0}, completion_tokens_{0}, reused_tokens_{0}, prefix_hits_{0};
  std::mutex time_mu_;
  double prefill_s_ = 0, decode_s_ = 0, wait_s_ = 0;
};

void Server::Handlers::install(httplib::Server& http) {
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kIndexHtml, sizeof kIndexHtml - 1, "text/html; charset=utf-8");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lk(mu_);
    int busy = 0;
    for (const auto& sl : s_.slots_) busy += sl->busy;
    json j = {{"status", draining_ ? "shutting down" : "ok"},
              {"slots_idle", int(s_.slots_.size()) - busy},
              {"slots_busy", busy},
              {"queue", waiting_.size()}};
    res.status = draining_ ? 503 : 200;
    res.set_content(j.dump(), "application/json");
  });
  http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const auto& cfg = s_.engine_->llm().config();
    json m = {{"id", s_.opt_.model_name},
              {"object", "model"},
              {"created", int64_t(std::time(nullptr))},
              {"owned_by", "edgevlm"},
              {"meta",
               {{"n_ctx", s_.engine_->default_n_ctx()},
                {"n_vocab", cfg.n_vocab},
                {"n_embd", cfg.n_embd},
                {"vision", s_.engine_->has_vision()},
                {"slots", s_.slots_.size()}}}};
    res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
              chat_completions(req, res, reader);
            });
  http.Post("/v1/images",
            [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
              upload_image(req, res, reader);
            });
  http.Get(R"(/v1/images/(img-[0-9a-f]{32}))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const std::string id = req.matches[1];
    const std::string st = s_.images_->status(id);
    if (st.empty()) return send_error(res, 404, "not_found_error", "no image '" + id + "' (never uploaded or evicted)");
    res.set_content(json{{"id", id}, {"object", "image"}, {"status", st}}.dump(), "application/json");
  });
  // Errors httplib raises itself (no route, body over the limit, bad request line) in OpenAI's shape.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int st = res.status;
    const std::string msg = st == 404   ? "no route " + req.method + " " + req.path
                            : st == 413 ? "the request body is over the server's limit (--max-body-mb)"
                            : st == 405 ? "method not allowed"
                                        : "bad request";
    send_error(res, st, st == 404 ? "not_found_error" : "invalid_request_error", msg);
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "server_error", what);
  });
}

bool Server::Handlers::authorized(const httplib::Request& req, httplib::Response& res) {
  if (s_.opt_.api_key.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + s_.opt_.api_key) return true;
  send_error(res, 401, "authentication_error", "missing or wrong API key (Authorization: Bearer KEY)");
  return false;
}

bool Server::Handlers::read_body(const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader, std::string* body) {
  // The whole body within request_timeout_s of the handler's start: a client that trickles bytes
  // is cut off instead of holding a connection forever.
  const auto deadline = Clock::now() + std::chrono::seconds(s_.opt_.request_timeout_s);
  bool too_slow = false, too_big = false;
  const uint64_t declared = req.get_header_value<uint64_t>("Content-Length");
  if (declared > s_.opt_.max_body_bytes) {
    // Read and drop a body not far over the limit, so that a client still writing it reads the
    // 413 instead of a reset connection; a larger one is cut off at once.
    if (declared <= s_.opt_.max_body_bytes + kDrainBytes) reader([&](const char*, size_t) { return Clock::now() < deadline; });
    res.set_header("Connection", "close");
    send_error(res, 413, "invalid_request_error", "the request body is over the server's limit of " +
                                                      std::to_string(s_.opt_.max_body_bytes >> 20) + " MiB");
    return false;
  }
  const bool ok = reader([&](const char* data, size_t n) {
    if (Clock::now() > deadline) return !(too_slow = true);
    if (body->size() + n > s_.opt_.max_body_bytes) return !(too_big = true);
    body->append(data, n);
    return true;
  });
  if (too_big) {
    send_error(res, 413, "invalid_request_error", "the request body is over the server's limit of " +
                                                      std::to_string(s_.opt_.max_body_bytes >> 20) + " MiB");
    return false;
  }
  if (too_slow || !ok) {
    res.set_header("Connection", "close");
    send_error(res, 408, "invalid_request_error",
               too_slow ? "the request body took longer than " + std::to_string(s_.opt_.request_timeout_s) + " s"
                        : "the request body was not received in full");
    return false;
  }
  return true;
}

std::shared_ptr<Server::Handlers::Lease> Server::Handlers::acquire(const std::vector<std::string>& keys,
                                                                    int n_prior) {
  std::unique_lock<std::mutex> lk(mu_);
  if (draining_) throw_api_error(503, "server_error", "the server is shutting down");
  int idle = 0;
  for (const auto& sl : s_.slots_) idle += !sl->busy;
  if (int(waiting_.size()) >= s_.opt_.queue + idle) {  // every idle slot is spoken for, and the queue is full
    ++rejected_;
    throw_api_error(429, "rate_limit_error",
                    "all " + std::to_string(s_.slots_.size()) + " slots are busy and " +
                        std::to_string(waiting_.size()) + " requests are waiting; retry later",
                    "", "queue_full");
  }
  const uint64_t ticket = next_ticket_++;
  waiting_.push_back(ticket);
  Timer wait;
  Slot* chosen = nullptr;
  cv_.wait(lk, [&] {
    if (draining_) return true;
    if (waiting_.front() != ticket) return false;
    size_t best_match = 0;
    for (auto& sl : s_.slots_) {
      if (sl->busy) continue;
      // How many of the request's earlier turns this slot already holds (all of what it holds must match).
      size_t m = sl->held.size();
      if (m > size_t(n_prior) || !std::equal(sl->held.begin(), sl->held.end(), keys.begin())) m = 0;
      if (!chosen || m > best_match || (m == best_match && sl->last_used < chosen->last_used)) {
        chosen = sl.get();
        best_match = m;
      }
    }
    return chosen != nullptr;
  });
  waiting_.erase(std::find(waiting_.begin(), waiting_.end(), ticket));
  cv_.notify_all();
  if (draining_) throw_api_error(503, "server_error", "the server is shutting down");
  chosen->busy = true;
  chosen->last_used = ++use_counter_;
  ++active_;
  {
    std::lock_guard<std::mutex> tl(time_mu_);
    wait_s_ += wait.elapsed_ms() / 1000.0;
  }
  return std::shared_ptr<Lease>(new Lease{this, chosen});
}

void Server::Handlers::release(Slot* slot) {
  std::lock_guard<std::mutex> lk(mu_);
  slot->busy = false;
  --active_;
  cv_.notify_all();
}

void Server::Handlers::upload_image(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader) {
  ++requests_;
  if (!authorized(req, res)) return;
  std::string body;
  if (!read_body(req, res, reader, &body)) return;
  try {
    std::vector<uint8_t> bytes;
    if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
      const json j = json::parse(body, nullptr, false);
      const json* url = nullptr;
      if (j.is_object())
        for (const char* k : {"image", "url", "image_url"})
          if (j.contains(k) && j[k].is_string()) url = &j[k];
      if (!url) throw_api_error(400, "invalid_request_error", "expected {\"image\": \"data:image/...;base64,...\"}",
                                "image");
      if (parse_image_url(url->get<std::string>(), &bytes, s_.opt_.limits.max_image_bytes) != ImageSource::Inline)
        throw_api_error(400, "invalid_request_error", "upload the image's bytes, not an id", "image");
    } else {
      bytes.assign(body.begin(), body.end());
    }
    if (bytes.empty()) throw_api_error(400, "invalid_request_error", "the request holds no image", "image");
    const ImageCache::Ref ref = s_.images_->put(std::move(bytes), s_.opt_.limits.max_image_pixels);
    json j = {{"id", ref.id}, {"object", "image"}, {"width", ref.width}, {"height", ref.height},
              {"cached", ref.hit}, {"status", s_.images_->status(ref.id)}};
    res.set_content(j.dump(), "application/json");
  } catch (const ApiError& e) {
    ++failed_;
    send_error(res, e);
  } catch (const Error& e) {
    ++failed_;
    send_error(res, 400, "invalid_request_error", e.what());
  }
}

void Server::Handlers::chat_completions(const httplib::Request& req, httplib::Response& res,
                                        const httplib::ContentReader& reader) {
  ++requests_;
  if (!authorized(req, res)) return;
  std::string body;
  if (!read_body(req, res, reader, &body)) return;
  std::shared_ptr<Lease> lease;
  try {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (draining_) throw_api_error(503, "server_error", "the server is shutting down");
    }
    const json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) throw_api_error(400, "invalid_request_error", "the request body is not valid JSON");
    auto cr = std::make_shared<ChatRequest>(parse_chat_request(j, s_.opt_.sampling, s_.opt_.limits));

    // Images: each named by its content id; inline ones start encoding now (or hit the cache).
    std::vector<std::vector<ImageCache::Ref>> refs(cr->turns.size());
    int image_hits = 0;
    for (size_t t = 0; t < cr->turns.size(); ++t) {
      for (const std::string& url : cr->turns[t].images) {
        if (!s_.engine_->has_vision())
          throw_api_error(400, "invalid_request_error", "this server's model has no vision part (started without --mmproj)",
                          "messages");
        std::vector<uint8_t> bytes;
        if (parse_image_url(url, &bytes, s_.opt_.limits.max_image_bytes) == ImageSource::Uploaded) {
          auto ref = s_.images_->find(url);
          if (!ref)
            throw_api_error(400, "invalid_request_error",
                            "image '" + url + "' is unknown to this server (never uploaded, or evicted): upload it again",
                            "messages", "image_not_found");
          refs[t].push_back(*ref);
        } else {
          try {
            refs[t].push_back(s_.images_->put(std::move(bytes), s_.opt_.limits.max_image_pixels));
          } catch (const Error& e) {
            throw_api_error(400, "invalid_request_error", e.what(), "messages", "bad_image");
          }
        }
        image_hits += refs[t].back().hit;
      }
    }
    std::vector<std::string> keys;
    for (size_t t = 0; t < cr->turns.size(); ++t) {
      std::vector<std::string> ids;
      for (const auto& r : refs[t]) ids.push_back(r.id);
      keys.push_back(turn_key(cr->turns[t].role, cr->turns[t].text, ids));
    }
    const int n_prior = int(cr->turns.size()) - 1;
    lease = acquire(keys, n_prior);
    Slot& slot = *lease->slot;
    Session& session = *slot.session;

    // Replay what the slot does not hold yet; what it holds is the prompt cache's hit.
    size_t from = slot.held.size();
    if (from == 0 || from > size_t(n_prior) || !std::equal(slot.held.begin(), slot.held.end(), keys.begin())) {
      session.reset();
      slot.held.clear();
      from = 0;
    }
    const int reused = session.n_past();
    if (reused > 0) ++prefix_hits_;
    reused_tokens_ += reused;
    try {
      if (from == 0) {
        session.set_system_prompt(cr->turns[0].role == "system" ? cr->turns[0].text : std::string());
        if (cr->turns[0].role == "system") slot.held.push_back(keys[from++]);
      }
      for (size_t t = from; int(t) < n_prior; t += 2) {
        if (cr->turns[t].role != "user" || cr->turns[t + 1].role != "assistant")
          throw_api_error(400, "invalid_request_error",
                          "messages must alternate user and assistant after the system message", "messages");
        for (const auto& r : refs[t]) session.attach_image_embeddings(r.embeddings, r.id);
        session.add_exchange(cr->turns[t].text, cr->turns[t + 1].text);
        slot.held.push_back(keys[t]);
        slot.held.push_back(keys[t + 1]);
      }
      for (const auto& r : refs.back()) session.attach_image_embeddings(r.embeddings, r.id);
    } catch (...) {
      session.reset();
      slot.held.clear();
      throw;
    }

    GenerateParams gp;
    gp.n_predict = cr->max_tokens > 0 ? cr->max_tokens : s_.opt_.limits.max_tokens;
    gp.sampler = cr->sampling;
    if (!cr->seed_given) gp.sampler.seed = random_seed();
    gp.stop_strings = cr->stop;
    const std::string user_key = keys.back();

    auto provider = [this, lease, cr, gp, user_key, reused, image_hits](size_t, httplib::DataSink& sink) {
      Slot& slot = *lease->slot;
      Session& session = *slot.session;
      const std::string id = "chatcmpl-" + random_hex(24);
      const int64_t created = std::time(nullptr);
      bool gone = false;
      auto write = [&](const std::string& s) {
        if (!gone && !sink.write(s.data(), s.size())) gone = true;
        return !gone;
      };
      auto chunk = [&](json delta, json finish) {
        return json{{"id", id},
                    {"object", "chat.completion.chunk"},
                    {"created", created},
                    {"model", s_.opt_.model_name},
                    {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}})}};
      };
      if (cr->stream) write(sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)));
      // Each piece goes out at once; without streaming a space (JSON allows leading whitespace)
      // still probes the connection, so a client that went away stops the answer within a token.
      TextCallback on_text = [&](std::string_view piece) {
        return cr->stream ? write(sse(chunk({{"content", std::string(piece)}}, nullptr))) : write(" ");
      };
      SessionAnswer a;
      try {
        a = session.ask(cr->turns.back().text, gp, on_text);
      } catch (const std::exception& e) {
        ++failed_;
        session.reset();
        slot.held.clear();
        ApiError err;
        err.message = e.what();
        if (cr->stream)
          write(sse(err.to_json()));
        else
          write(err.to_json().dump());
        sink.done();
        return true;
      }
      const GenerateResult& r = a.result;
      if (r.cancelled_in_prefill) {
        slot.held.push_back(user_key);  // keeps the key list in step; reset below
        session.reset();
        slot.held.clear();
      } else {
        slot.held.push_back(user_key);
        slot.held.push_back(turn_key("assistant", r.text, {}));
      }
      if (gone || r.stop_reason == StopReason::Cancelled) ++cancelled_;
      const int n_completion = int(r.tokens.size());
      const int n_prompt = std::max(0, session.n_past() - n_completion);
      prompt_tokens_ += r.n_prompt;
      completion_tokens_ += n_completion;
      {
        std::lock_guard<std::mutex> tl(time_mu_);
        prefill_s_ += r.prefill_ms / 1000.0;
        decode_s_ += r.decode_ms / 1000.0;
      }
      json usage = {{"prompt_tokens", n_prompt},
                    {"completion_tokens", n_completion},
                    {"total_tokens", n_prompt + n_completion},
                    {"prompt_tokens_details", {{"cached_tokens", reused}}}};
      json timings = {{"cached_n", reused},
                      {"prompt_n", r.n_prompt},
                      {"prompt_ms", r.prefill_ms},
                      {"predicted_n", r.n_decode},
                      {"predicted_ms", r.decode_ms},
                      {"predicted_per_second", r.decode_tok_s()},
                      {"image_wait_ms", a.wait_ms},
                      {"encode_ms", a.vit_ms},
                      {"images", a.n_images},
                      {"image_cache_hits", image_hits},
                      {"prefilled_while_encoding", a.n_prefilled_while_typing}};
      if (!a.image_errors.empty()) timings["image_errors"] = a.image_errors;
      const char* finish = finish_reason(r.stop_reason);
      if (cr->stream) {
        json last = chunk(json::object(), finish);
        last["timings"] = timings;
        write(sse(last));
        if (cr->include_usage) {
          json u = chunk(json::object(), nullptr);
          u["choices"] = json::array();
          u["usage"] = usage;
          write(sse(u));
        }
        write("data: [DONE]\n\n");
      } else {
        json j = {{"id", id},
                  {"object", "chat.completion"},
                  {"created", created},
                  {"model", s_.opt_.model_name},
                  {"choices", json::array({{{"index", 0},
                                            {"message", {{"role", "assistant"}, {"content", r.text}}},
                                            {"finish_reason", finish}}})},
                  {"usage", usage},
                  {"timings", timings}};
        write(j.dump());
      }
      sink.done();
      return true;
    };
    res.set_header("Cache-Control", "no-cache");
    if (cr->stream) res.set_header("X-Accel-Buffering", "no");  // nginx: pass tokens through at once
    res.set_chunked_content_provider(cr->stream ? "text/event-stream" : "application/json", provider);
  } catch (const ApiError& e) {
    ++failed_;
    if (e.status == 429) res.set_header("Retry-After", "1");
    send_error(res, e);
  } catch (const Error& e) {
    ++failed_;
    send_error(res, 400, "invalid_request_error", e.what());
  }
}

std::string Server::Handlers::metrics_text() {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
    out += buf;
  };
  int busy = 0;
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& sl : s_.slots_) busy += sl->busy;
    queued = waiting_.size();
  }
  const ImageCacheStats ic = s_.images_->stats();
  double prefill, decode, wait;
  {
    std::lock_guard<std::mutex> tl(time_mu_);
    prefill = prefill_s_, decode = decode_s_, wait = wait_s_;
  }
  metric("edgevlm_requests_total", "counter", "HTTP requests to the API endpoints", double(requests_));
  metric("edgevlm_requests_rejected_total", "counter", "requests refused with 429 (queue full)", double(rejected_));
  metric("edgevlm_requests_failed_total", "counter", "requests answered with an error", double(failed_));
  metric("edgevlm_requests_cancelled_total", "counter", "answers stopped by a client that went away", double(cancelled_));
  metric("edgevlm_prompt_tokens_total", "counter", "positions prefilled (text and image)", double(prompt_tokens_));
  metric("edgevlm_completion_tokens_total", "counter", "tokens generated", double(completion_tokens_));
  metric("edgevlm_slots", "gauge", "slots (concurrent conversations)", double(s_.slots_.size()));
  metric("edgevlm_slots_busy", "gauge", "slots running a request", busy);
  metric("edgevlm_queue_depth", "gauge", "requests waiting for a slot", double(queued));
  metric("edgevlm_queue_wait_seconds_total", "counter", "time requests waited for a slot", wait);
  metric("edgevlm_encode_seconds_total", "counter", "image decode + ViT + projector time", ic.encode_seconds);
  metric("edgevlm_prefill_seconds_total", "counter", "prompt prefill time", prefill);
  metric("edgevlm_decode_seconds_total", "counter", "token generation time", decode);
  metric("edgevlm_prompt_cache_hits_total", "counter", "requests that continued a slot's conversation",
         double(prefix_hits_));
  metric("edgevlm_prompt_cache_reused_tokens_total", "counter", "KV positions reused instead of prefilled",
         double(reused_tokens_));
  metric("edgevlm_image_cache_hits_total", "counter", "images found in the embedding cache", double(ic.hits));
  metric("edgevlm_image_cache_misses_total", "counter", "images encoded", double(ic.misses));
  metric("edgevlm_image_cache_evictions_total", "counter", "embeddings evicted (least recently used)",
         double(ic.evictions));
  metric("edgevlm_image_cache_bytes", "gauge", "bytes of cached embeddings", double(ic.bytes));
  metric("edgevlm_image_cache_entries", "gauge", "cached images", double(ic.entries));
  metric("edgevlm_process_resident_bytes", "gauge", "resident set size", proc_status_mib("VmRSS") * 1048576.0);
  metric("edgevlm_uptime_seconds", "gauge", "seconds since start",
         std::chrono::duration<double>(Clock::now() - started_).count());
  return out;
}

void Server::Handlers::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    draining_ = true;
  }
  cv_.notify_all();  // queued requests get 503
  const auto deadline = Clock::now() + std::chrono::seconds(s_.opt_.drain_timeout_s);
  std::unique_lock<std::mutex> lk(mu_);
  while (active_ > 0 && Clock::now() < deadline) cv_.wait_for(lk, std::chrono::milliseconds(50));
  for (auto& sl : s_.slots_)
    if (sl->busy) sl->session->cancel();  // each ends within a decode step and answers what it has
  while (active_ > 0) cv_.wait_for(lk, std::chrono::milliseconds(50));
}

Server::Server(std::shared_ptr<const Engine> engine, ServerOptions opt) : engine_(std::move(engine)), opt_(std::move(opt)) {
  EV_CHECK(opt_.slots >= 1 && opt_.slots <= 64, "--slots must be 1 to 64, got %d", opt_.slots);
  EV_CHECK(opt_.queue >= 0, "--queue must be 0 or more, got %d", opt_.queue);
  EV_CHECK(opt_.request_timeout_s >= 1, "the request timeout must be at least 1 s");
  if (opt_.model_name.empty()) {
    std::string p = engine_->options().model_path;
    opt_.model_name = p.substr(p.find_last_of('/') + 1);
  }
  images_ = std::make_unique<ImageCache>(engine_, opt_.image_cache_bytes);
  for (int i = 0; i < opt_.slots; ++i) {
    auto sl = std::make_unique<Slot>();
    sl->index = i;
    sl->session = std::make_unique<Session>(engine_);
    slots_.push_back(std::move(sl));
  }
  handlers_ = std::make_unique<Handlers>(*this);
  http_ = std::make_unique<httplib::Server>();
  const int threads = opt_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(opt_.max_body_bytes + kDrainBytes);  // read_body() enforces the limit
  http_->set_read_timeout(opt_.idle_timeout_s, 0);
  http_->set_write_timeout(opt_.request_timeout_s, 0);
  // One request per connection: cpp-httplib 0.11 keeps a connection open after a 408 and would go
  // on reading a trickling client's bytes as the next request; closing after each response ends
  // it. (Connections are cheap on loopback; nginx in front keeps its own to its clients.)
  http_->set_keep_alive_max_count(1);
  handlers_->install(*http_);
}

Server::~Server() = default;

void Server::bind() {
  if (opt_.port == 0) {
    port_ = http_->bind_to_any_port(opt_.host.c_str());
    EV_CHECK(port_ > 0, "cannot listen on %s (any port)", opt_.host.c_str());
  } else {
    EV_CHECK(http_->bind_to_port(opt_.host.c_str(), opt_.port), "cannot listen on %s:%d (in use, or not an address of this machine)",
             opt_.host.c_str(), opt_.port);
    port_ = opt_.port;
  }
  // Which instance answered, for a deployment of several behind a load balancer.
  http_->set_default_headers({{"X-Edgevlm-Instance", opt_.host + ":" + std::to_string(port_)}});
}

void Server::serve() { http_->listen_after_bind(); }

void Server::shutdown() {
  handlers_->shutdown();
  http_->stop();
}

}  // namespace edgevlm
