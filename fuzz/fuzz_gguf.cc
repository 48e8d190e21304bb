// libFuzzer target: the GGUF header, metadata and tensor table (src/formats/gguf), then the typed
// getters on every key, as the loaders use them.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<edgevlm::GGUFFile> f;
  try {
    f = edgevlm::GGUFFile::from_memory(data, size, "fuzz.gguf");
  } catch (const edgevlm::Error&) {
    return 0;
  }
  for (const auto& kv : f->metadata()) {
    try {
      if (kv.second.type == edgevlm::GGUFType::ARRAY) {
        (void)f->get_strings(kv.first);
        (void)f->get_ints(kv.first);
        (void)f->get_floats(kv.first);
      } else {
        (void)f->get_string_or(kv.first, "");
      }
    } catch (const edgevlm::Error&) {
    }
  }
  return 0;
}
