// Random-weight decoders written to GGUF: the subjects of the parity tests (edgevlm vs llama.cpp vs
// a numpy reference) and of the text benchmarks. Each architecture (llama, qwen2, qwen3, gemma3,
// phi3, lfm2) gets the keys, tensor names and shapes llama.cpp's converter writes for it, and
// tokenizer.* copied from a real vocab file, so that llama.cpp loads them as it would any model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/quant.h"

namespace edgevlm {

struct RandomLlamaSpec {
  // llama (normal RoPE), qwen2 (NeoX RoPE, usually with qkv_bias), qwen3 (q/k norms), gemma3
  // (post-norms, GELU, sliding window), phi3 (fused QKV and gate/up), lfm2 (short convolutions
  // and attention)
  std::string arch = "llama";
  int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
  int head_dim = 0;  // 0: n_embd / n_head; otherwise written as attention.key_length/value_length
  int n_rot = 0;     // rotated dimensions per head (rope.dimension_count); 0: head_dim
  // Llama 3 RoPE scaling written as rope_freqs.weight the way the converter computes it from
  // rope_scaling {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings};
  // factor 0: none.
  float llama3_factor = 0, llama3_low = 1, llama3_high = 4;
  int llama3_orig_ctx = 8192;
  // phi3 LongRoPE: rope_factors_short/long.weight, rope.scaling.original_context_length and
  // rope.scaling.attn_factor, as the converter writes them for a longrope config (0: none).
  int longrope_orig_ctx = 0;
  int n_swa = 0;  // gemma3: attention.sliding_window (0: key absent)
  // Linear RoPE scaling (rope.scaling.type linear, rope.scaling.factor), as Gemma 3 4B+ and
  // linearly scaled Llama fine-tunes have it; 0: none.
  float rope_linear_factor = 0;
  // lfm2: the layers with attention (the others are short convolutions of conv_kernel taps).
  std::vector<int> attn_layers;
  int conv_kernel = 3;
  float rope_freq_base = 10000;
  bool qkv_bias = false;
  bool tied_output = false;  // no output.weight: the output projection is token_embd
  GGMLType weight_type = GGMLType::F32;  // every matrix (token_embd included); norms and biases stay F32
  uint64_t seed = 1;
  std::string vocab_from;  // path of a GGUF whose tokenizer.* keys (and vocab size) are copied
  // Added members:
  float rms_eps = 1e-5f;
  int n_vocab = 0;  // vocabulary size when vocab_from is empty (the file then has no tokenizer)
};

// Writes the model. Weights are deterministic in (seed, tensor name) and independent of the weight
// type, so the Q8_0/Q4_0 files of a seed are quantizations of its F32 file. Throws edgevlm::Error
// on an inconsistent spec or an unreadable vocab file.
void write_random_llama(const std::string& path, const RandomLlamaSpec& spec);

// Parameters (elements of all tensors) of the model a spec describes.
int64_t random_llama_param_count(const RandomLlamaSpec& spec, int n_vocab);

// `edgevlm gen-model ...`: parses the flags below into a spec and writes the file (argv[0] is the
// subcommand name). Returns the process exit status; errors are printed, not thrown.
//   --out F  --arch llama|qwen2  --embd N  --layers N  --heads N  --kv-heads N  --ff N  --ctx N
//   --type f32|f16|q8_0|q4_0  --seed S  --vocab-from GGUF | --vocab-size N
//   [--rope-base B] [--eps E] [--qkv-bias] [--tied] [--head-dim N] [--rot N]
//   [--llama3-rope FACTOR,LOW,HIGH,ORIG_CTX] [--longrope ORIG_CTX] [--swa N] [--attn-layers I,J,...]
//   [--rope-linear FACTOR]
int gen_model_main(int argc, char** argv);

// A random LoRA adapter for a base model file, in llama.cpp's adapter format (model/lora.h): one
// .lora_a/.lora_b pair per targeted matrix of the base. Values are deterministic in (seed, tensor
// name). A is drawn with rms 1/√n_in, and B so that the product's scaled update s·B·A has an rms
// of `strength` times the base matrix's own rms: 0.5 moves a random model's greedy tokens.
struct RandomLoraSpec {
  std::string base;  // the base model GGUF (its architecture, tensor names and shapes)
  // Matrices by their name within a block ("attn_q", "ffn_down", "attn_qkv", "shortconv.in_proj",
  // ...) or "output" for output.weight; {"all"}: every matrix the decoder multiplies.
  std::vector<std::string> targets = {"all"};
  int rank = 8;
  float alpha = 16;  // written as adapter.lora.alpha; 0: the key is written as 0 (s = the user's scale)
  GGMLType type = GGMLType::F32;  // f32, f16, bf16 or q8_0 (q8_0 needs ranks and widths in blocks of 32)
  float strength = 0.5f;
  uint64_t seed = 1;
};

// Writes the adapter; returns the number of matrices it targets. Throws edgevlm::Error on a bad
// spec, a base file that cannot be read or targets that match no matrix.
int write_random_lora(const std::string& path, const RandomLoraSpec& spec);

// `edgevlm gen-lora --base M.gguf --out A.gguf [--rank R] [--alpha A] [--targets T,...]
// [--type f32|f16|bf16|q8_0] [--strength S] [--seed S]`.
int gen_lora_main(int argc, char** argv);

}  // namespace edgevlm
