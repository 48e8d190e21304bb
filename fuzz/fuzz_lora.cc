// libFuzzer target: a LoRA adapter file (src/model/lora) read and validated on its own, then
// applied to a tiny in-memory base decoder both ways (merged into its F32 matrices, and on the fly),
// then one forward step of one token through the on-the-fly terms. Inputs are small adapter GGUF
// files; the seeds (fuzz/corpus/lora) were written by `edgevlm gen-lora` for the same base:
//   edgevlm gen-model --arch llama --embd 32 --layers 1 --heads 2 --kv-heads 1 --ff 64 --ctx 16
//                     --type f32 --vocab-size 64 --out base.gguf
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/lora.h"
#include "model/random_model.h"

namespace {

// The base model, written once to a temporary file and read back into memory.
const edgevlm::GGUFFile& base() {
  static std::vector<uint8_t> bytes;
  static std::unique_ptr<edgevlm::GGUFFile> f = [] {
    edgevlm::RandomLlamaSpec s;
    s.arch = "llama";
    s.n_embd = 32, s.n_layer = 1, s.n_head = 2, s.n_head_kv = 1, s.n_ff = 64, s.n_ctx = 16;
    s.n_vocab = 64;
    s.weight_type = edgevlm::GGMLType::F32;
    char path[] = "/tmp/edgevlm-fuzz-lora-base-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    edgevlm::write_random_llama(path, s);
    auto file = edgevlm::GGUFFile::open(path);
    std::remove(path);
    return file;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static edgevlm::ThreadPool pool(1);
  const edgevlm::GGUFFile& b = base();
  try {
    auto ad = edgevlm::LoraAdapter::from_file(edgevlm::GGUFFile::from_memory(data, size, "fuzz-lora.gguf"), 0.5f);
    (void)edgevlm::LlmModel::load(b, nullptr, {ad.get()}, edgevlm::LoraMode::Auto);
    auto m = edgevlm::LlmModel::load(b, nullptr, {ad.get()}, edgevlm::LoraMode::OnTheFly);
    const edgevlm::LlmConfig& c = m->config();
    edgevlm::KvCache cache(c, 4);
    std::vector<float> emb(size_t(c.n_embd)), logits(size_t(c.n_vocab));
    const int32_t id = int32_t(size % size_t(c.n_vocab));
    m->embed_tokens(&id, 1, emb.data());
    edgevlm::llm_forward(*m, cache, emb.data(), 1, logits.data(), false, pool);
  } catch (const edgevlm::Error&) {
  }
  return 0;
}
