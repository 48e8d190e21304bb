// Per-architecture conventions of the decoder (llm.cc reads the keys every family shares; this
// part sets what differs). Internal to src/model/.
#pragma once

#include "formats/gguf.h"
#include "model/llm.h"

namespace edgevlm {

// Whether LlmModel runs this general.architecture.
bool llm_arch_supported(const std::string& arch);

// Fills c's family fields (rope type, norms, fused matrices, activation, scales, sliding window,
// RoPE scaling) from c.arch and the file's keys and tensors. The shared hyperparameters (n_embd,
// n_head, head_dim, n_layer, ...) are already set. Throws edgevlm::Error naming a bad key.
void apply_arch_conventions(const GGUFFile& f, LlmConfig& c);

}  // namespace edgevlm
