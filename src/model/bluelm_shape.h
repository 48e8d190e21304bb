// The `bluelm-v-3b` shape of DESIGN.md with random weights, written at the paper's deployment
// precisions, for performance and memory work at real scale:
//   LLM    llama, hidden 2560, 32 layers, 32 heads of 80, 8 KV heads, SwiGLU 6912, vocab 100096,
//          matrices Q4_0, token embeddings and output Q8_0, norms F32 (2.7B parameters, ~1.7 GB);
//   mmproj SigLIP so400m (tile 384, patch 14, hidden 1152, 27 layers, 16 heads, MLP 4304), lfm2
//          projector (2×2 merge, LayerNorm, 4608→2560, GELU, 2560→2560), matrices Q8_0 (those with
//          rows of 4304 or 14 that are not whole 32-blocks: F16), vectors F32.
// The tokenizer is GPT-2's byte-level BPE vocabulary extended with synthetic merges (word +
// suffix, each reachable: the base BPE splits the text into exactly those two) to 100096 entries, plus ChatML and image marker tokens, so llama.cpp loads the file as
// it would any gpt2-style model. Both files are streamed tensor by tensor: peak memory is the
// vocabulary plus a few MB, whatever the model size. Weights are deterministic in (seed, name).
#pragma once

#include <cstdint>
#include <string>

#include "formats/quant.h"
#include "model/quantize.h"

namespace edgevlm {

struct BlueLmShape {
  // LLM
  int n_embd = 2560, n_layer = 32, n_head = 32, n_head_kv = 8, n_ff = 6912, n_vocab = 100096, n_ctx = 4096;
  float rope_freq_base = 10000.0f, rms_eps = 1e-5f;
  // Types by quantize.h's schemes: bluelm = matrices Q4_0, token_embd/output Q8_0; or uniform.
  QuantScheme llm_scheme = QuantScheme::BlueLM;
  // Vision
  int image_size = 384, patch_size = 14, vit_embd = 1152, vit_layers = 27, vit_heads = 16, vit_ff = 4304;
  int proj_hidden = 2560;                   // mm.1 output (mm.2 maps it to n_embd)
  QuantScheme vit_scheme = QuantScheme::BlueLM;  // bluelm = Q8_0 matrices
  int max_tiles = 16;
  uint64_t seed = 1;
  // A gpt2-style vocabulary GGUF to extend (tokens, merges); default: GPT-2's from the shared
  // test data (EDGEVLM_SHARED_DIR or ../shared next to the source tree).
  std::string vocab_from;
};

// Writes the language model. progress(bytes_done, bytes_total) may be empty.
void write_bluelm_llm(const std::string& path, const BlueLmShape& s,
                      void (*progress)(uint64_t done, uint64_t total) = nullptr);
// Writes the vision file.
void write_bluelm_mmproj(const std::string& path, const BlueLmShape& s,
                         void (*progress)(uint64_t done, uint64_t total) = nullptr);

// `edgevlm gen-bluelm [--out-dir DIR] [--seed S] [--llm-layers N] [--vit-layers N] [--vocab-from F]`
// Writes DIR/bluelm-v-3b-q4_0.gguf and DIR/bluelm-v-3b-mmproj-q8_0.gguf. Returns the exit status.
int gen_bluelm_main(int argc, char** argv);

}  // namespace edgevlm
