// Flags and parsing shared by the edgevlm subcommands (see commands.h), so that each option is
// declared, validated and documented the same way in every command that takes it.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/generate.h"
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

// The engine's flags: -m (required), -t, --ctx, --kv-type, --lora (repeatable), --lora-mode,
// --chat-template, --low-memory; with
// `vision`, also --mmproj (required when vision == Required), --tiling, --max-tiles, --alpha,
// --vit-batch, --no-pipeline (call finish_engine_options after parsing).
enum class VisionFlags { None, Optional, Required };
struct EngineFlags {
  EngineOptions opt;
  bool no_pipeline = false;
};
void add_engine_options(CLI::App& app, EngineFlags& f, VisionFlags vision);
// The options after parsing, with a stderr progress reporter for stages over a second unless quiet.
EngineOptions finish_engine_options(const EngineFlags& f, bool quiet = false);

// The answer's flags: -n, the sampling flags, --chunk, --stop (repeatable; \n, \t escapes).
struct AnswerFlags {
  int n_predict;
  int chunk = 128;
  SamplerParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;  // benchmarks on random weights: keep going past end-of-generation tokens
  explicit AnswerFlags(int default_n_predict) : n_predict(default_n_predict) {}
  GenerateParams params() const;
};
void add_answer_options(CLI::App& app, AnswerFlags& f);

// "\n" → newline, "\t" → tab, "\r", "\\"; other backslashes are kept.
std::string unescape(const std::string& s);
// The whole file; throws edgevlm::Error naming it when unreadable.
std::string read_text_file(const std::string& path);

// Writes text to stdout at once (the streamed answer).
bool print_piece(std::string_view piece);
// One line to stderr: [timing] with the answer's figures (load ms when > 0).
void print_timing(const GenerateResult& r, double load_ms, int n_images, int n_tiles, double vit_ms,
                  double wait_ms);
// The answer as one JSON object on stdout: text, token ids, stop reason, usage and timings.
void print_json_answer(const GenerateResult& r, double load_ms, int n_images, int n_tiles, double vit_ms,
                       double wait_ms, const std::vector<std::string>& image_errors = {},
                       int prompt_positions = -1);  // usage.prompt_tokens (-1: r.n_prompt)

}  // namespace edgevlm
