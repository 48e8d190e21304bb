// libFuzzer target: a vision model file (mmproj) — GGUF, clip.* config and tensors — then the encode
// of one small image through tiling, the ViT and the projector (src/vision, src/engine/vlm).
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/vlm.h"
#include "formats/gguf.h"
#include "vision/image.h"
#include "vision/mmproj.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static edgevlm::ThreadPool pool(1);
  try {
    auto f = edgevlm::GGUFFile::from_memory(data, size, "fuzz-mmproj.gguf");
    auto m = edgevlm::MmprojModel::load(*f);
    edgevlm::Image img(24, 16);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 37);
    edgevlm::TilingOverrides small;
    small.max_tiles = 2;
    (void)edgevlm::encode_image(*m, img, edgevlm::tiling_config_for(m->config(), small), pool);
  } catch (const edgevlm::Error&) {
  }
  return 0;
}
