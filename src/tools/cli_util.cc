#include "tools/cli_util.h"

#include <string>

#include "core/error.h"

namespace edgevlm {

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

}  // namespace edgevlm
