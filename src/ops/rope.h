// Rotary position embeddings, applied exactly as llama.cpp (ggml_rope_ext without YaRN) does:
//   theta_i(p) = freq_scale · (p · base^(−2i/n_dims)) / freq_factor_i, the power computed as a
//   running product in float like ggml; cos and sin are multiplied by attn_factor;
//   Normal (LLAMA_ROPE_TYPE_NORM, arch `llama`): rotates adjacent pairs (x[2i], x[2i+1]);
//   NeoX   (LLAMA_ROPE_TYPE_NEOX, arch `qwen2`): rotates (x[i], x[i + n_dims/2]).
// Dimensions at and beyond n_dims pass through unchanged. llama.cpp's converter permutes the Q and
// K weights of Hugging Face `llama` checkpoints so that Normal rotation is right for GGUF files,
// so the engine must not permute anything itself.
#pragma once

#include <cstdint>
#include <vector>

namespace edgevlm {

enum class RopeType { Normal, NeoX };

// The scalings llama.cpp applies without YaRN (the defaults change nothing).
struct RopeScaling {
  float freq_scale = 1.0f;  // linear interpolation: 1 / {arch}.rope.scaling.factor
  // n_dims/2 divisors of the frequencies, or null: Llama-3's rope_freqs.weight, Phi-3's LongRoPE
  // rope_factors_short/long.weight.
  const float* freq_factors = nullptr;
  float attn_factor = 1.0f;  // scales cos and sin ({arch}.rope.scaling.attn_factor, LongRoPE)
};

// cos/sin of every rotation angle for positions pos0 .. pos0+n_pos−1: a table of
// n_pos × (n_dims/2) pairs (cos, sin).
std::vector<float> rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos);
// The same table written to out (n_pos × n_dims floats), for callers that reuse a buffer.
void rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos, float* out);
// With scaling.
void rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos, float* out, const RopeScaling& s);

// Positions by sections (ggml_rope_multi): M-RoPE, Qwen2-VL's decoder, and the 2-D RoPE of its
// ViT. Every position has three coordinates (t, h, w) at pos[3·p ..]; rotation pair i (of n_pairs)
// takes one of them by its sector i mod (t + h + w): [0, t) t, [t, t + h) h, the rest w. The angle
// is coordinate · theta_scale^k as a running float product like ggml, k = i (restart false: the
// decoder, theta_scale = base^(−2/n_rot)) or i minus the sector's start (restart true: the ViT,
// sections {d/4, d/4, 0} on (row, column), theta_scale = base^(−4/d)). Writes n_pos rows of
// n_pairs (cos, sin), applied with rope_apply(NeoX, ..., n_dims = 2·n_pairs).
struct RopeSections {
  int t = 0, h = 0, w = 0;
  bool restart = false;
};
void rope_table_sections(int n_pairs, float theta_scale, const RopeSections& sec, const int32_t* pos, int64_t n_pos,
                         float* out, const RopeScaling& s = {});

// Rotates n_heads vectors of head_dim floats (contiguous) at one position; cs points at that
// position's row of rope_table.
void rope_apply(RopeType type, float* x, int n_heads, int head_dim, int n_dims, const float* cs);

}  // namespace edgevlm
