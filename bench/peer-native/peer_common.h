// Shared by the two peer drivers: flags, medians, peak RSS, the JSON line and the description of the
// llama.cpp build being measured (its release, the CPU features ggml compiled in, thread pool).
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "llama.h"

namespace peer {

// --name value pairs; every flag is declared with a default so a typo is an error, not a silent default.
class Flags {
 public:
  Flags(int argc, char** argv, std::map<std::string, std::string> defaults) : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      std::string name = argv[i];
      if (name.rfind("--", 0) != 0 || !values_.count(name.substr(2)))
        throw std::runtime_error("unknown flag " + name);
      if (i + 1 >= argc) throw std::runtime_error("flag " + name + " needs a value");
      values_[name.substr(2)] = argv[++i];
    }
  }
  std::string str(const std::string& k) const { return values_.at(k); }
  int num(const std::string& k) const {
    const std::string& v = values_.at(k);
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || x < 0 || x > 1 << 20) throw std::runtime_error("--" + k + " must be an integer, got '" + v + "'");
    return static_cast<int>(x);
  }

 private:
  std::map<std::string, std::string> values_;
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> xs) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  size_t m = xs.size() / 2;
  return xs.size() % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

// VmHWM: the process's peak resident set, as edgevlm's benchmarks report it.
inline double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return -1;
}

inline enum llama_flash_attn_type flash_attn(const std::string& v) {
  if (v == "on") return LLAMA_FLASH_ATTN_TYPE_ENABLED;
  if (v == "off") return LLAMA_FLASH_ATTN_TYPE_DISABLED;
  if (v == "auto") return LLAMA_FLASH_ATTN_TYPE_AUTO;
  throw std::runtime_error("--flash-attn must be on, off or auto, got '" + v + "'");
}

inline enum lm_ggml_type kv_type(const std::string& v) {
  if (v == "f16") return LM_GGML_TYPE_F16;
  if (v == "f32") return LM_GGML_TYPE_F32;
  if (v == "q8_0") return LM_GGML_TYPE_Q8_0;
  throw std::runtime_error("--kv must be f16, f32 or q8_0, got '" + v + "'");
}

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

inline std::string json_list(const std::vector<double>& xs) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < xs.size(); ++i) o << (i ? "," : "") << xs[i];
  return o.str() + "]";
}

// What was measured: the llama.cpp release these sources mirror and the features ggml was built with.
inline std::string build_json() {
  std::ostringstream o;
  o << "\"engine\":\"llama.cpp " << PEER_LLAMA_BUILD << " (llama.rn " << PEER_LLAMA_RN_VERSION
    << " sources, compiled here)\",\"build_flags\":\"" << json_escape(PEER_BUILD_FLAGS) << "\",\"system_info\":\""
    << json_escape(llama_print_system_info()) << "\"";
  return o.str();
}

inline void quiet_log(enum lm_ggml_log_level level, const char* text, void*) {
  if (level >= LM_GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

// Greedy choice over the last position's logits.
inline llama_token argmax(const float* logits, int n_vocab) {
  return static_cast<llama_token>(std::max_element(logits, logits + n_vocab) - logits);
}

// The model on the CPU and a context of n_ctx positions with the flags' threads, batch, flash
// attention and KV type.
struct Loaded {
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
};
inline Loaded load(const Flags& f, int n_ctx) {
  llama_log_set(quiet_log, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  Loaded l;
  l.model = llama_model_load_from_file(f.str("model").c_str(), mp);
  if (!l.model) throw std::runtime_error("cannot load " + f.str("model"));
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = n_ctx;
  cp.n_batch = std::max(1, f.num("batch"));
  cp.n_threads = cp.n_threads_batch = f.num("threads");
  cp.flash_attn_type = flash_attn(f.str("flash-attn"));
  cp.type_k = cp.type_v = kv_type(f.str("kv"));
  cp.no_perf = true;
  l.ctx = llama_init_from_model(l.model, cp);
  if (!l.ctx) throw std::runtime_error("cannot create a context (is --kv " + f.str("kv") + " allowed without flash attention?)");
  return l;
}

// main() of a driver: runs body, and turns an exception into "NAME: why" on stderr and exit 1.
template <typename Body>
int guarded_main(const char* name, Body body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace peer
