#include "tools/cli_util.h"

#include <cstdio>
#include <random>
#include <string>

#include "core/error.h"

namespace edgevlm {

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nRun '%s --help' for the options.\n", e.what(), app.get_name().c_str());
    return 1;
  }
}

void add_kv_type_option(CLI::App& app, KvType& type) {
  const CLI::Validator known(
      [](std::string& s) -> std::string {
        try {
          parse_kv_type(s);
          return {};
        } catch (const Error& e) {
          return e.what();
        }
      },
      "q8|f16|f32");
  app.add_option_function<std::string>(
         "--kv-type", [&type](const std::string& s) { type = parse_kv_type(s); },
         "KV cache storage: q8 (INT8, the default) | f16 | f32 (exact)")
      ->check(known)
      ->default_str(kv_type_name(type));
}

namespace {
uint64_t random_seed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}
}  // namespace

void add_sampling_options(CLI::App& app, SamplerParams& p) {
  p.seed = random_seed();
  app.add_option("--temp", p.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", p.top_k, "Keep the K most likely tokens; 0 = off")->capture_default_str();
  app.add_option("--top-p", p.top_p, "Nucleus sampling: keep the smallest set with this total probability; 1 = off")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--min-p", p.min_p, "Drop tokens below this fraction of the top probability; 0 = off")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--repeat-penalty", p.repeat_penalty, "Penalty for tokens seen in the last --repeat-last-n; 1 = off")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--repeat-last-n", p.repeat_last_n, "Window of the repetition penalty; 0 = off, -1 = all")
      ->capture_default_str();
  app.add_option_function<int64_t>(
         "--seed", [&p](int64_t s) { p.seed = s >= 0 ? uint64_t(s) : random_seed(); },
         "RNG seed for sampling; -1 = random")
      ->default_str("-1");
}

}  // namespace edgevlm
