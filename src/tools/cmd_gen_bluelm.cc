// `edgevlm gen-bluelm`: the bluelm-v-3b shape with random weights (src/model/bluelm_shape.h owns
// the flags; this file only registers the command).
#include "model/bluelm_shape.h"
#include "tools/commands.h"

namespace edgevlm {
EDGEVLM_COMMAND(gen_bluelm, "gen-bluelm",
                "Write the bluelm-v-3b shape (2.7B decoder Q4_0 + so400m mmproj Q8_0), random weights",
                gen_bluelm_main);
}  // namespace edgevlm
