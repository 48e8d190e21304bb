// Flags and parsing shared by the edgevlm subcommands (see commands.h), so that each option is
// declared, validated and documented the same way in every command that takes it.
#pragma once

#include <CLI/CLI.hpp>

#include "model/kv_cache.h"

namespace edgevlm {

// --kv-type q8 | f16 | f32 (parse_kv_type's names; default: the value `type` holds, normally
// kDefaultKvType). A bad value is a parse error that names it.
void add_kv_type_option(CLI::App& app, KvType& type);

}  // namespace edgevlm
