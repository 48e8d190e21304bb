// Random-weight LLaMA-family models written to GGUF: the subjects of the parity tests (edgevlm vs
// llama.cpp vs a numpy reference) and of the text benchmarks. The files follow the GGUF ecosystem's
// conventions (general.architecture llama/qwen2, standard tensor names, tokenizer.* copied from a
// real vocab file) so that llama.cpp loads them as it would any model.
#pragma once

#include <cstdint>
#include <string>

#include "formats/quant.h"

namespace edgevlm {

struct RandomLlamaSpec {
  std::string arch = "llama";  // "llama" (normal RoPE) or "qwen2" (NeoX RoPE, usually with qkv_bias)
  int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
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
//   [--rope-base B] [--eps E] [--qkv-bias] [--tied]
int gen_model_main(int argc, char** argv);

}  // namespace edgevlm
