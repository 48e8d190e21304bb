// `edgevlm gen-model`: writes random-weight models to GGUF (src/model/random_model.h owns the
// flags; this file only forwards argv to it).
#include "tools/commands.h"

#if __has_include("model/random_model.h")
#include "model/random_model.h"

namespace edgevlm {
EDGEVLM_COMMAND(gen_model, "gen-model", "Write a random-weight model to GGUF (for tests and benchmarks)",
                gen_model_main);
EDGEVLM_COMMAND(gen_vlm_pair, "gen-vlm-pair",
                "Write a random-weight SmolVLM (idefics3) or InternVL pair (decoder + mmproj) to GGUF (for tests)",
                gen_vlm_pair_main);
}  // namespace edgevlm
#endif
