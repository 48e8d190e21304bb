// edgevlm: one binary, several subcommands (see commands.h for how they register).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/error.h"
#include "tools/commands.h"

namespace edgevlm {

std::vector<Command>& command_registry() {
  static std::vector<Command> registry;  // function-local: safe from static-init order
  return registry;
}

}  // namespace edgevlm

namespace {

void print_usage(FILE* out) {
  auto cmds = edgevlm::command_registry();
  std::sort(cmds.begin(), cmds.end(),
            [](const edgevlm::Command& a, const edgevlm::Command& b) { return std::strcmp(a.name, b.name) < 0; });
  std::fprintf(out,
               "edgevlm: on-device inference for multimodal LLMs (BlueLM-V-3B design, GGUF models)\n\n"
               "Usage: edgevlm COMMAND [OPTIONS]\n       edgevlm --version\n\nCommands:\n");
  for (const auto& c : cmds) std::fprintf(out, "  %-12s %s\n", c.name, c.help);
  std::fprintf(out, "\nRun 'edgevlm COMMAND --help' for the options of a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 1;
  }
  const std::string name = argv[1];
  if (name == "--version" || name == "version") {
    std::printf("edgevlm %s\n", EDGEVLM_VERSION);
    return 0;
  }
  if (name == "-h" || name == "--help" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& c : edgevlm::command_registry()) {
    if (name != c.name) continue;
    // The command sees "edgevlm NAME" as its program name and its own flags after it.
    std::string prog = std::string("edgevlm ") + c.name;
    std::vector<char*> args;
    args.push_back(prog.data());
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    try {
      return c.main(argc - 1, args.data());
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "error: unknown command '%s'\n\n", name.c_str());
  print_usage(stderr);
  return 1;
}
