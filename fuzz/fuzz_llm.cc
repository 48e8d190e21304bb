// libFuzzer target: a language model file end to end — GGUF, decoder config and weights, tokenizer,
// then one forward step of one token (src/model). Inputs are small GGUF files; a seed corpus of
// tiny valid models lets the fuzzer reach the forward pass.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static edgevlm::ThreadPool pool(1);
  try {
    auto f = edgevlm::GGUFFile::from_memory(data, size, "fuzz-llm.gguf");
    auto m = edgevlm::LlmModel::load(*f);
    auto tok = edgevlm::Tokenizer::from_gguf(*f);
    const auto ids = tok->encode("hello <s> world", true, true);
    (void)tok->decode(ids);
    const edgevlm::LlmConfig& c = m->config();
    edgevlm::KvCache cache(c, 4);
    std::vector<float> emb(size_t(c.n_embd)), logits(size_t(c.n_vocab));
    const int32_t id = ids.empty() ? 0 : ids[0] % c.n_vocab;
    m->embed_tokens(&id, 1, emb.data());
    edgevlm::llm_forward(*m, cache, emb.data(), 1, logits.data(), false, pool);
  } catch (const edgevlm::Error&) {
  }
  return 0;
}
