// `edgevlm gen-lora`: writes random LoRA adapters to GGUF (src/model/random_model.h owns the
// flags; this file only forwards argv to it).
#include "tools/commands.h"

#if __has_include("model/random_model.h")
#include "model/random_model.h"

namespace edgevlm {
EDGEVLM_COMMAND(gen_lora, "gen-lora", "Write a random LoRA adapter for a model to GGUF (for tests)", gen_lora_main);
}  // namespace edgevlm
#endif
