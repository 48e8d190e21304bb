// What each decoder family does differently, in one place. Every rule follows what llama.cpp's
// converter (convert_hf_to_gguf.py) writes and its loader (src/llama-model.cpp, src/models/*.cpp)
// reads, so a file runs here as it runs there:
//
//   llama   Normal RoPE (the converter permutes Q/K for it). Llama 3.1/3.2 write their RoPE
//           scaling as rope_freqs.weight, n_rot/2 divisors of the frequencies.
//   qwen2   NeoX RoPE, Q/K/V biases.
//   qwen2vl (the decoder of Qwen2-VL and Qwen2.5-VL) qwen2 with M-RoPE: rope.dimension_sections
//           splits the rotation pairs among an image token's (t, row, column) coordinates.
//   qwen3   NeoX RoPE, no biases, attn_q_norm/attn_k_norm: RMSNorm over each head before RoPE.
//   gemma3  NeoX RoPE; embeddings × √n_embd (tokens only, not image embeddings); q/k norms;
//           post_attention_norm and post_ffw_norm on each sub-block's output before the residual;
//           GELU (tanh) gated feed-forward; q·k scaled by 1/√key_length (27B, 62 layers:
//           1/√(n_embd/n_head)). With attention.sliding_window > 0, five of every six layers
//           (attention.sliding_window_pattern, default 6: layer l is local unless l % 6 == 5) attend
//           to that many last positions and rotate with base rope.freq_base_swa (default 10000)
//           unscaled; the others use rope.freq_base and the linear scaling (4B+: factor 8).
//           Norm weights: HF Gemma computes x·(1 + w); the converter stores 1 + w, so the file's
//           weights are used as they are, like every other RMSNorm here. final_logit_softcapping,
//           where a file has it, caps the logits (Gemma 3's configs and converter have none).
//   phi3    NeoX RoPE; Q, K, V in one attn_qkv matrix (Q rows, then K, then V) and the gate and
//           up projections in one ffn_up (gate rows first); LongRoPE (Phi-3.5/Phi-4-mini):
//           rope_factors_short/long.weight, the long ones when the context exceeds
//           rope.scaling.original_context_length, and rope.scaling.attn_factor on cos/sin. Its
//           attention.sliding_window is ignored (llama.cpp disables Phi's sliding window).
//   lfm2    (LFM2, the decoder of LFM2-VL) NeoX RoPE; attention.head_count_kv is a per-layer array
//           whose 0 entries mark gated short-convolution layers: [B, C, x] = shortconv.in_proj ·
//           RMSNorm(x) (attn_norm), y = shortconv.out_proj · (C ⊙ conv(B ⊙ x)), a causal depthwise
//           convolution of shortconv.l_cache taps (shortconv.conv.weight, [l_cache, n_embd]);
//           the other layers are attention with q/k norms. Every layer has the SwiGLU feed-forward.
//           The final norm is token_embd_norm.weight (the converter's name for embedding_norm,
//           which LFM2 applies after the last layer); the output is tied to the embeddings.
#include "model/llm_arch.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace edgevlm {

namespace {

const char* const kArchs[] = {"llama", "qwen2", "qwen2vl", "qwen3", "gemma3", "phi3", "lfm2"};

}  // namespace

bool llm_arch_supported(const std::string& arch) {
  for (const char* a : kArchs)
    if (arch == a) return true;
  return false;
}

std::string supported_llm_archs() {
  std::string s;
  for (const char* a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a);
  return s;
}

void apply_arch_conventions(const GGUFFile& f, LlmConfig& c) {
  const std::string a = c.arch + ".";
  const char* path = f.path().c_str();
  c.attn_scale = 1.0f / std::sqrt(float(c.head_dim));

  // RoPE scaling shared by the families: linear interpolation and LongRoPE's attention factor.
  const std::string scaling = f.get_string_or(a + "rope.scaling.type", "none");
  EV_CHECK(scaling == "none" || scaling == "linear" || scaling == "longrope",
           "%s: '%srope.scaling.type' = '%s' is not supported (none, linear, longrope)", path, a.c_str(),
           scaling.c_str());
  const double factor = f.get_float_or(a + "rope.scaling.factor", 0.0);
  EV_CHECK(factor >= 0 && std::isfinite(factor), "%s: '%srope.scaling.factor' = %g is out of range", path,
           a.c_str(), factor);
  c.rope_freq_scale = factor == 0 ? 1.0f : float(1.0 / factor);  // llama.cpp: absent or 0 = none
  c.rope_attn_factor = float(f.get_float_or(a + "rope.scaling.attn_factor", 1.0));
  c.n_ctx_orig = int(f.get_int_or(a + "rope.scaling.original_context_length", c.n_ctx_train));
  c.swa_layer.assign(size_t(c.n_layer), 0);
  for (uint8_t conv : c.conv_layer)
    EV_CHECK(!conv || c.arch == "lfm2", "%s: '%sattention.head_count_kv' has 0 entries (convolution layers), which "
             "only lfm2 has", path, a.c_str());

  if (c.arch == "llama") {
    c.rope_type = RopeType::Normal;
  } else if (c.arch == "qwen2") {
    c.rope_type = RopeType::NeoX;
  } else if (c.arch == "qwen2vl") {
    // Qwen2 with M-RoPE: rope.dimension_sections = [t, h, w, e] rotation pairs (Qwen2-VL 2B/7B:
    // 16, 24, 24, 0 of 64); llama.cpp requires the key and requires n_rot = head_dim.
    c.rope_type = RopeType::NeoX;
    c.mrope = true;
    const std::string key = a + "rope.dimension_sections";
    EV_CHECK(f.has(key), "%s: missing metadata key '%s'", path, key.c_str());
    const std::vector<int64_t> s = f.get_ints(key);
    EV_CHECK(s.size() == 4, "%s: '%s' has %zu entries, expected 4", path, key.c_str(), s.size());
    for (int64_t v : s) EV_CHECK(v >= 0 && v <= c.n_rot, "%s: '%s' holds %lld, outside [0, %d]", path, key.c_str(), (long long)v, c.n_rot);
    EV_CHECK(s[3] == 0, "%s: '%s' gives %lld pairs to a fourth position coordinate, which no supported model uses",
             path, key.c_str(), (long long)s[3]);
    EV_CHECK(s[0] + s[1] + s[2] > 0 && s[0] + s[1] + s[2] <= c.n_rot / 2,
             "%s: '%s' sums to %lld pairs; it must be in [1, n_rot/2 = %d]", path, key.c_str(),
             (long long)(s[0] + s[1] + s[2]), c.n_rot / 2);
    c.rope_sections = {int(s[0]), int(s[1]), int(s[2]), false};
  } else if (c.arch == "qwen3") {
    c.rope_type = RopeType::NeoX;
    c.qk_norm = true;
  } else if (c.arch == "gemma3") {
    c.rope_type = RopeType::NeoX;
    c.qk_norm = true;
    c.post_norms = true;
    c.ffn_act = FfnAct::GeluTanh;
    c.embd_scale = std::sqrt(float(c.n_embd));
    if (c.n_layer == 62) c.attn_scale = 1.0f / std::sqrt(float(c.n_embd / c.n_head));
    c.n_swa = int(f.get_int_or(a + "attention.sliding_window", 0));
    EV_CHECK(c.n_swa >= 0, "%s: '%sattention.sliding_window' = %d is negative", path, a.c_str(), c.n_swa);
    if (c.n_swa > 0) {
      // The pattern: a period (layer l is local unless l % period == period − 1), or one flag per
      // layer (true = local), as llama.cpp's get_key_or_arr reads either.
      const std::string key = a + "attention.sliding_window_pattern";
      const GGUFValue* pattern = f.find(key);
      if (pattern && pattern->type == GGUFType::ARRAY) {
        const GGUFArray& flags = *pattern->arr;
        EV_CHECK(int64_t(flags.size()) == c.n_layer, "%s: '%s' has %zu entries for %d layers", path, key.c_str(),
                 flags.size(), c.n_layer);
        for (int l = 0; l < c.n_layer; ++l) {
          const GGUFValue e = flags.at(size_t(l));
          c.swa_layer[size_t(l)] = e.type == GGUFType::BOOL ? e.b : e.as_int() != 0;  // as_int names a bad type
        }
      } else {
        const int period = int(f.get_int_or(key, 6));
        EV_CHECK(period >= 1, "%s: '%s' = %d must be positive", path, key.c_str(), period);
        for (int l = 0; l < c.n_layer; ++l) c.swa_layer[size_t(l)] = l % period < period - 1;
      }
      c.rope_freq_base_swa = float(f.get_float_or(a + "rope.freq_base_swa", 10000.0));
    }
    c.logit_softcap = float(f.get_float_or(a + "final_logit_softcapping", 0.0));
  } else if (c.arch == "phi3") {
    c.rope_type = RopeType::NeoX;
    c.fused_qkv = f.find_tensor("blk.0.attn_qkv.weight") != nullptr;
    c.fused_gate_up = true;
  } else if (c.arch == "lfm2") {
    c.rope_type = RopeType::NeoX;
    c.qk_norm = true;
    c.output_norm_name = "token_embd_norm.weight";
    EV_CHECK(f.has(a + "shortconv.l_cache"), "%s: missing metadata key '%sshortconv.l_cache'", path, a.c_str());
    const int64_t l_cache = f.get_int(a + "shortconv.l_cache");
    EV_CHECK(l_cache >= 2 && l_cache <= 64, "%s: '%sshortconv.l_cache' = %lld is outside [2, 64]", path, a.c_str(),
             (long long)l_cache);
    c.conv_kernel = int(l_cache);
  } else {
    fail("%s: architecture '%s' is not supported by the decoder (supported: %s)", path, c.arch.c_str(),
         supported_llm_archs().c_str());
  }
}

}  // namespace edgevlm
