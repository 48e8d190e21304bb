// Subcommands of the `edgevlm` binary. Each lives in its own file under src/tools/ and registers
// itself with EDGEVLM_COMMAND, so adding one needs no edit to main.cc:
//   static int my_main(int argc, char** argv);   // argv[0] is "edgevlm NAME"
//   EDGEVLM_COMMAND(my, "name", "one-line description", my_main);
// A command returns the process exit status. Errors should print "error: ..." and return 1;
// main() also catches anything that escapes and does the same.
#pragma once

#include <vector>

namespace edgevlm {

struct Command {
  const char* name;
  const char* help;
  int (*main)(int argc, char** argv);
};

std::vector<Command>& command_registry();

struct RegisterCommand {
  RegisterCommand(const char* name, const char* help, int (*fn)(int, char**)) {
    command_registry().push_back({name, help, fn});
  }
};

}  // namespace edgevlm

#define EDGEVLM_COMMAND(id, name, help, fn) \
  static ::edgevlm::RegisterCommand edgevlm_command_##id(name, help, fn)
