// The C API (include/edgevlm.h): handles over Engine and Session, errors as statuses with messages.
// Every handle is checked against a registry of live objects before use, so a NULL, freed or
// foreign handle is an error instead of undefined behaviour; the registry hands out shared
// ownership for the length of a call, so a handle freed on another thread mid-call stays valid
// until that call returns.
#include "edgevlm.h"

#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "model/llm.h"
#include "vision/image.h"

#ifndef EDGEVLM_VERSION
#define EDGEVLM_VERSION "0.0.0"
#endif

using edgevlm::Engine;
using edgevlm::EngineOptions;
using edgevlm::GenerateParams;
using edgevlm::Session;
using edgevlm::SessionAnswer;

struct edgevlm_model_params {
  EngineOptions opt;
};

struct edgevlm_gen_params {
  GenerateParams gp;
  edgevlm_gen_params() {
    gp.n_predict = 256;
  }
};

struct edgevlm_model {
  std::shared_ptr<const Engine> engine;
  mutable std::mutex mu;  // guards error
  std::string error;
};

struct edgevlm_session {
  std::shared_ptr<const Engine> engine;  // keeps the weights alive after edgevlm_model_free
  std::mutex mu;                         // one call at a time (cancel excepted)
  std::unique_ptr<Session> session;  // set once at creation; destroyed with the handle's last owner
  std::string error;
  SessionAnswer last;
};

namespace {

thread_local std::string t_last_error;

// Live handles. Lookups copy the shared_ptr so the object outlives a concurrent free.
template <typename T>
class Registry {
 public:
  T* add(std::shared_ptr<T> p) {
    std::lock_guard<std::mutex> lk(mu_);
    T* raw = p.get();
    live_.emplace(raw, std::move(p));
    return raw;
  }
  std::shared_ptr<T> find(const T* raw) {
    if (!raw) return nullptr;
    std::lock_guard<std::mutex> lk(mu_);
    auto it = live_.find(raw);
    return it == live_.end() ? nullptr : it->second;
  }
  std::shared_ptr<T> remove(const T* raw) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = live_.find(raw);
    if (it == live_.end()) return nullptr;
    auto p = std::move(it->second);
    live_.erase(it);
    return p;
  }

 private:
  std::mutex mu_;
  std::unordered_map<const T*, std::shared_ptr<T>> live_;
};

Registry<edgevlm_model>& models() {
  static auto* r = new Registry<edgevlm_model>;  // never destroyed: handles may be freed at exit
  return *r;
}
Registry<edgevlm_session>& sessions() {
  static auto* r = new Registry<edgevlm_session>;
  return *r;
}

edgevlm_status fail(edgevlm_status st, const std::string& msg, std::string* handle_error = nullptr) {
  t_last_error = msg;
  if (handle_error) *handle_error = msg;
  return st;
}

edgevlm_status invalid_handle(const char* what) {
  return fail(EDGEVLM_ERR_INVALID_HANDLE, std::string("invalid ") + what + " handle (NULL, freed or not one of ours)");
}

// Runs fn, turning exceptions into a status (`error_status` for edgevlm::Error).
template <typename Fn>
edgevlm_status guarded(edgevlm_status error_status, std::string* handle_error, Fn&& fn) {
  try {
    fn();
    if (handle_error) handle_error->clear();
    return EDGEVLM_OK;
  } catch (const edgevlm::Error& e) {
    return fail(error_status, e.what(), handle_error);
  } catch (const std::bad_alloc&) {
    return fail(EDGEVLM_ERR_INTERNAL, "out of memory", handle_error);
  } catch (const std::exception& e) {
    return fail(EDGEVLM_ERR_INTERNAL, e.what(), handle_error);
  }
}

bool is(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

edgevlm_status unknown_option(const char* kind, const char* name) {
  return fail(EDGEVLM_ERR_INVALID_ARGUMENT, std::string("unknown ") + kind + " option '" + name + "'");
}

}  // namespace

extern "C" {

const char* edgevlm_version(void) { return EDGEVLM_VERSION; }

const char* edgevlm_status_name(edgevlm_status s) {
  switch (s) {
    case EDGEVLM_OK: return "ok";
    case EDGEVLM_ERR_INVALID_HANDLE: return "invalid handle";
    case EDGEVLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case EDGEVLM_ERR_MODEL: return "model error";
    case EDGEVLM_ERR_IMAGE: return "image error";
    case EDGEVLM_ERR_CONTEXT_FULL: return "context full";
    case EDGEVLM_ERR_CANCELLED: return "cancelled";
    case EDGEVLM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* edgevlm_last_error(void) { return t_last_error.c_str(); }

// ---- Model parameters ----------------------------------------------------------------------

edgevlm_model_params* edgevlm_model_params_new(void) {
  auto* p = new (std::nothrow) edgevlm_model_params;
  if (p) p->opt.threads = 0;
  return p;
}

void edgevlm_model_params_free(edgevlm_model_params* p) { delete p; }

edgevlm_status edgevlm_model_params_set_string(edgevlm_model_params* p, const char* name, const char* value) {
  if (!p || !name || !value) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "model_params_set_string: NULL argument");
  return guarded(EDGEVLM_ERR_INVALID_ARGUMENT, nullptr, [&] {
    EngineOptions& o = p->opt;
    if (is(name, "model")) o.model_path = value;
    else if (is(name, "mmproj")) o.mmproj_path = value;
    else if (is(name, "kv_type")) o.kv_type = edgevlm::parse_kv_type(value);
    else if (is(name, "tiling")) o.tiling.strategy = value;
    else if (is(name, "resample")) o.tiling.resample = value;
    else if (is(name, "vit_compat")) {
      EV_CHECK(is(value, "mtmd") || is(value, ""), "option 'vit_compat' = '%s': expected mtmd or an empty string", value);
      o.vit_compat = value;
    }
    else if (is(name, "chat_template")) o.chat_template = value;
    else if (is(name, "lora")) o.loras.push_back(edgevlm::parse_lora_spec(value));  // one more adapter
    else if (is(name, "lora_mode")) {
      EV_CHECK(is(value, "auto") || is(value, "on-the-fly"), "option 'lora_mode' = '%s': expected auto or on-the-fly",
               value);
      o.lora_mode = is(value, "on-the-fly") ? edgevlm::LoraMode::OnTheFly : edgevlm::LoraMode::Auto;
    } else edgevlm::fail("unknown string option '%s' (model, mmproj, kv_type, tiling, resample, vit_compat, chat_template, lora, lora_mode)", name);
  });
}

edgevlm_status edgevlm_model_params_set_int(edgevlm_model_params* p, const char* name, int64_t v) {
  if (!p || !name) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "model_params_set_int: NULL argument");
  auto in_range = [&](int64_t lo, int64_t hi) {
    EV_CHECK(v >= lo && v <= hi, "option '%s' = %lld: expected %lld to %lld", name, (long long)v, (long long)lo,
             (long long)hi);
    return int(v);
  };
  return guarded(EDGEVLM_ERR_INVALID_ARGUMENT, nullptr, [&] {
    EngineOptions& o = p->opt;
    if (is(name, "threads")) o.threads = in_range(0, 1024);
    else if (is(name, "n_ctx")) o.n_ctx = in_range(0, 1 << 20);
    else if (is(name, "max_tiles")) o.tiling.max_tiles = in_range(0, 64);
    else if (is(name, "vit_batch")) o.vit_batch = in_range(1, 1024);
    else if (is(name, "low_memory")) o.low_memory = in_range(0, 1) != 0;
    else if (is(name, "vit_pipeline")) o.vit_pipeline = in_range(0, 1) != 0;
    else edgevlm::fail("unknown int option '%s' (threads, n_ctx, max_tiles, vit_batch, low_memory, vit_pipeline)", name);
  });
}

edgevlm_status edgevlm_model_params_set_double(edgevlm_model_params* p, const char* name, double v) {
  if (!p || !name) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "model_params_set_double: NULL argument");
  if (!is(name, "alpha")) return unknown_option("double", name);
  if (!(v >= 0 && v <= 10)) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "option 'alpha': expected 0 to 10");
  p->opt.tiling.alpha = v;
  return EDGEVLM_OK;
}

// ---- Model ---------------------------------------------------------------------------------

edgevlm_status edgevlm_model_load(const edgevlm_model_params* p, edgevlm_model** out) {
  if (out) *out = nullptr;
  if (!p || !out) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "model_load: NULL argument");
  std::shared_ptr<const Engine> engine;
  const edgevlm_status st = guarded(EDGEVLM_ERR_MODEL, nullptr, [&] { engine = Engine::load(p->opt); });
  if (st != EDGEVLM_OK) return st;
  auto m = std::make_shared<edgevlm_model>();
  m->engine = std::move(engine);
  *out = models().add(std::move(m));
  return EDGEVLM_OK;
}

void edgevlm_model_free(edgevlm_model* m) { models().remove(m); }

const char* edgevlm_model_error(const edgevlm_model* m) {
  auto h = models().find(m);
  if (!h) return "invalid model handle";
  std::lock_guard<std::mutex> lk(h->mu);
  return h->error.c_str();  // the string lives in the handle, which the caller has not freed
}

edgevlm_status edgevlm_model_get_int(const edgevlm_model* m, const char* name, int64_t* value) {
  auto h = models().find(m);
  if (!h) return invalid_handle("model");
  if (!name || !value) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "model_get_int: NULL argument");
  const Engine& e = *h->engine;
  const edgevlm::LlmConfig& c = e.llm().config();
  if (is(name, "n_ctx")) *value = e.default_n_ctx();
  else if (is(name, "n_vocab")) *value = c.n_vocab;
  else if (is(name, "n_embd")) *value = c.n_embd;
  else if (is(name, "n_layer")) *value = c.n_layer;
  else if (is(name, "has_vision")) *value = e.has_vision() ? 1 : 0;
  else if (is(name, "threads")) *value = e.pool().size();
  else {
    std::lock_guard<std::mutex> lk(h->mu);
    return fail(EDGEVLM_ERR_INVALID_ARGUMENT, std::string("unknown model fact '") + name + "'", &h->error);
  }
  return EDGEVLM_OK;
}

// ---- Generation parameters -----------------------------------------------------------------

edgevlm_gen_params* edgevlm_gen_params_new(void) { return new (std::nothrow) edgevlm_gen_params; }

void edgevlm_gen_params_free(edgevlm_gen_params* g) { delete g; }

edgevlm_status edgevlm_gen_params_set_int(edgevlm_gen_params* g, const char* name, int64_t v) {
  if (!g || !name) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "gen_params_set_int: NULL argument");
  GenerateParams& gp = g->gp;
  if (is(name, "n_predict") && v >= -1 && v <= (1 << 20)) gp.n_predict = int(v);
  else if (is(name, "top_k") && v >= 0 && v <= (1 << 24)) gp.sampler.top_k = int(v);
  else if (is(name, "seed")) gp.sampler.seed = uint64_t(v);
  else if (is(name, "chunk") && v >= 1 && v <= (1 << 16)) gp.chunk_size = int(v);
  else if (is(name, "n_predict") || is(name, "top_k") || is(name, "chunk"))
    return fail(EDGEVLM_ERR_INVALID_ARGUMENT, std::string("option '") + name + "' out of range");
  else return unknown_option("int", name);
  return EDGEVLM_OK;
}

edgevlm_status edgevlm_gen_params_set_double(edgevlm_gen_params* g, const char* name, double v) {
  if (!g || !name) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "gen_params_set_double: NULL argument");
  edgevlm::SamplerParams& sp = g->gp.sampler;
  const bool unit = v >= 0 && v <= 1;
  if (is(name, "temperature") && v >= 0 && v <= 100) sp.temperature = float(v);
  else if (is(name, "top_p") && unit) sp.top_p = float(v);
  else if (is(name, "min_p") && unit) sp.min_p = float(v);
  else if (is(name, "repeat_penalty") && v > 0 && v <= 100) sp.repeat_penalty = float(v);
  else if (is(name, "temperature") || is(name, "top_p") || is(name, "min_p") || is(name, "repeat_penalty"))
    return fail(EDGEVLM_ERR_INVALID_ARGUMENT, std::string("option '") + name + "' out of range");
  else return unknown_option("double", name);
  return EDGEVLM_OK;
}

edgevlm_status edgevlm_gen_params_add_stop(edgevlm_gen_params* g, const char* stop) {
  if (!g || !stop || !*stop) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "gen_params_add_stop: NULL or empty string");
  g->gp.stop_strings.emplace_back(stop);
  return EDGEVLM_OK;
}

// ---- Session -------------------------------------------------------------------------------

edgevlm_status edgevlm_session_new(edgevlm_model* m, edgevlm_session** out) {
  if (out) *out = nullptr;
  auto mh = models().find(m);
  if (!mh) return invalid_handle("model");
  if (!out) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "session_new: NULL output pointer");
  auto s = std::make_shared<edgevlm_session>();
  s->engine = mh->engine;
  const edgevlm_status st = guarded(EDGEVLM_ERR_MODEL, nullptr, [&] { s->session = std::make_unique<Session>(s->engine); });
  if (st != EDGEVLM_OK) return st;
  *out = sessions().add(std::move(s));
  return EDGEVLM_OK;
}

void edgevlm_session_free(edgevlm_session* s) {
  auto h = sessions().remove(s);
  // A running ask on another thread ends at its next step; that call's reference then frees it.
  if (h) h->session->cancel();
}

const char* edgevlm_session_error(const edgevlm_session* s) {
  auto h = sessions().find(s);
  if (!h) return "invalid session handle";
  return h->error.c_str();
}

edgevlm_status edgevlm_session_set_system(edgevlm_session* s, const char* system_prompt) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!system_prompt) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "session_set_system: NULL text");
  std::lock_guard<std::mutex> lk(h->mu);
  return guarded(EDGEVLM_ERR_INVALID_ARGUMENT, &h->error, [&] { h->session->set_system_prompt(system_prompt); });
}

edgevlm_status edgevlm_session_attach_image_file(edgevlm_session* s, const char* path) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!path) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "attach_image_file: NULL path");
  std::lock_guard<std::mutex> lk(h->mu);
  return guarded(EDGEVLM_ERR_IMAGE, &h->error, [&] { h->session->attach_image(path); });
}

edgevlm_status edgevlm_session_attach_image_bytes(edgevlm_session* s, const void* data, size_t size) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!data && size > 0) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "attach_image_bytes: NULL data");
  std::lock_guard<std::mutex> lk(h->mu);
  return guarded(EDGEVLM_ERR_IMAGE, &h->error, [&] {
    const auto* b = static_cast<const uint8_t*>(data);
    h->session->attach_image_bytes(std::vector<uint8_t>(b, b + size), "<memory>");
  });
}

edgevlm_status edgevlm_session_attach_image_rgb(edgevlm_session* s, const uint8_t* pixels, int width, int height,
                                                size_t stride) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!pixels) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "attach_image_rgb: NULL pixels");
  if (width <= 0 || height <= 0 || int64_t(width) * height > edgevlm::ImageLoadOptions{}.max_pixels)
    return fail(EDGEVLM_ERR_IMAGE, "attach_image_rgb: " + std::to_string(width) + " x " + std::to_string(height) +
                                       " is not a valid image size");
  const size_t row = size_t(width) * 3;
  if (stride == 0) stride = row;
  if (stride < row) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "attach_image_rgb: stride smaller than width * 3");
  std::lock_guard<std::mutex> lk(h->mu);
  return guarded(EDGEVLM_ERR_IMAGE, &h->error, [&] {
    edgevlm::Image img(width, height);
    for (int y = 0; y < height; ++y) std::memcpy(img.row(y), pixels + size_t(y) * stride, row);
    h->session->attach_image_pixels(std::move(img), "<pixels>");
  });
}

edgevlm_status edgevlm_session_ask(edgevlm_session* s, const char* question, const edgevlm_gen_params* g,
                                   edgevlm_text_callback cb, void* user_data) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!question) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "ask: NULL question");
  std::lock_guard<std::mutex> lk(h->mu);
  const edgevlm_gen_params defaults;
  const GenerateParams& gp = (g ? *g : defaults).gp;
  std::string piece;
  edgevlm::TextCallback on_text;
  if (cb)
    on_text = [&](std::string_view t) {
      piece.assign(t.data(), t.size());  // NUL-terminated for the callee
      return cb(piece.c_str(), piece.size(), user_data) == 0;
    };
  h->last = SessionAnswer{};
  edgevlm_status st = guarded(EDGEVLM_ERR_MODEL, &h->error, [&] { h->last = h->session->ask(question, gp, on_text); });
  if (st == EDGEVLM_ERR_MODEL && h->error.find("context") != std::string::npos) st = EDGEVLM_ERR_CONTEXT_FULL;
  if (st != EDGEVLM_OK) return st;
  if (h->last.result.cancelled_in_prefill)
    return fail(EDGEVLM_ERR_CANCELLED, "cancelled before the answer began; the question was dropped", &h->error);
  if (!h->last.image_errors.empty()) h->error = "images left out: " + h->last.image_errors[0];
  return EDGEVLM_OK;
}

const char* edgevlm_session_answer(const edgevlm_session* s) {
  auto h = sessions().find(s);
  if (!h) return "";
  return h->last.result.text.c_str();
}

edgevlm_status edgevlm_session_get_double(const edgevlm_session* s, const char* name, double* value) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  if (!name || !value) return fail(EDGEVLM_ERR_INVALID_ARGUMENT, "session_get_double: NULL argument");
  std::lock_guard<std::mutex> lk(h->mu);
  const SessionAnswer& a = h->last;
  if (is(name, "prompt_tokens")) *value = a.result.n_prompt;
  else if (is(name, "completion_tokens")) *value = double(a.result.tokens.size());
  else if (is(name, "n_past")) *value = h->session->n_past();
  else if (is(name, "n_ctx")) *value = h->session->n_ctx();
  else if (is(name, "images")) *value = a.n_images;
  else if (is(name, "tiles")) *value = a.n_tiles;
  else if (is(name, "prefill_ms")) *value = a.result.prefill_ms;
  else if (is(name, "decode_ms")) *value = a.result.decode_ms;
  else if (is(name, "decode_tok_s")) *value = a.result.decode_tok_s();
  else if (is(name, "encode_wait_ms")) *value = a.wait_ms;
  else if (is(name, "vit_ms")) *value = a.vit_ms;
  else if (is(name, "stop_reason")) *value = double(int(a.result.stop_reason));
  else return fail(EDGEVLM_ERR_INVALID_ARGUMENT, std::string("unknown session figure '") + name + "'", &h->error);
  return EDGEVLM_OK;
}

edgevlm_status edgevlm_session_cancel(edgevlm_session* s) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  // Not under h->mu: ask() holds it while it runs. Session::cancel is thread-safe, and the session
  // lives as long as h.
  h->session->cancel();
  return EDGEVLM_OK;
}

edgevlm_status edgevlm_session_reset(edgevlm_session* s) {
  auto h = sessions().find(s);
  if (!h) return invalid_handle("session");
  std::lock_guard<std::mutex> lk(h->mu);
  return guarded(EDGEVLM_ERR_INTERNAL, &h->error, [&] {
    h->session->reset();
    h->last = SessionAnswer{};
  });
}

}  // extern "C"
