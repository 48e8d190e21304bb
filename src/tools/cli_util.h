// Flags and parsing shared by the edgevlm subcommands (see commands.h), so that each option is
// declared, validated and documented the same way in every command that takes it.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

#include "engine/sampler.h"
#include "model/kv_cache.h"

namespace edgevlm {

// Parses the command line into app. Returns the exit status when the command should stop: 0 once
// --help is printed, 1 once a bad command line is reported ("error: ..." and a pointer to
// --help, on stderr); nullopt to go on.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

// --kv-type q8 | f16 | f32 (parse_kv_type's names; default: the value `type` holds, normally
// kDefaultKvType). A bad value is a parse error that names it.
void add_kv_type_option(CLI::App& app, KvType& type);

// The sampling flags --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n and
// --seed, writing into p; their defaults are p's values. p.seed is drawn at random now and
// replaced by --seed N (N >= 0; -1 keeps it random).
void add_sampling_options(CLI::App& app, SamplerParams& p);

}  // namespace edgevlm
