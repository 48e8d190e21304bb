// libFuzzer target: tokenizer encode and decode on arbitrary bytes, with the vocabularies of the
// test files (GPT-2 and StarCoder BPE, Phi-3 SentencePiece), and the chat templates: detection from arbitrary
// Jinja text and rendering of arbitrary message text (src/model).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace {

struct Vocab {
  std::unique_ptr<edgevlm::GGUFFile> file;
  std::unique_ptr<edgevlm::Tokenizer> tok;
};

std::vector<Vocab>& vocabs() {
  static std::vector<Vocab> v = [] {
    std::vector<Vocab> out;
    const char* dir = std::getenv("EDGEVLM_FUZZ_VOCAB_DIR");
    const std::string base = dir ? dir : EDGEVLM_FUZZ_VOCAB_DIR;
    for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-starcoder.gguf"}) {
      try {
        Vocab x;
        x.file = edgevlm::GGUFFile::open(base + "/" + name);
        x.tok = edgevlm::Tokenizer::from_gguf(*x.file);
        out.push_back(std::move(x));
      } catch (const edgevlm::Error&) {
      }
    }
    return out;
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const Vocab& v : vocabs()) {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = v.tok->encode(text, true, special);
      (void)v.tok->decode(ids);
    }
  }
  try {
    (void)edgevlm::detect_chat_template(text);
    for (auto t : {edgevlm::ChatTemplate::ChatML, edgevlm::ChatTemplate::Llama3, edgevlm::ChatTemplate::None}) {
      (void)edgevlm::apply_chat_template(t, {{"system", std::string(text.substr(0, size / 2))},
                                             {"user", std::string(text.substr(size / 2))}});
    }
  } catch (const edgevlm::Error&) {
  }
  return 0;
}
