// libFuzzer target: image decoding (JPEG, PNG, BMP, GIF, PNM with EXIF orientation), then dynamic
// resolution and the resize of every tile (src/vision).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "vision/dynamic_resolution.h"
#include "vision/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgevlm::ImageLoadOptions opt;
  opt.max_pixels = 4 << 20;  // the fuzzer's memory limit, not the engine's
  try {
    (void)edgevlm::probe_image(data, size, opt, "fuzz");
    const edgevlm::Image img = edgevlm::load_image_from_memory(data, size, opt, "fuzz");
    edgevlm::TilingConfig cfg;
    cfg.strategy = edgevlm::TilingStrategy::Relaxed;
    cfg.tile_size = 32;
    cfg.max_tiles = 4;
    cfg.thumbnail = edgevlm::ThumbnailPlacement::Last;
    const edgevlm::ImageTiler tiler(img, cfg);
    std::vector<float> tile(tiler.tile_floats());
    for (int i = 0; i < tiler.n_tiles(); ++i) tiler.emit(i, tile.data());
  } catch (const edgevlm::Error&) {
  }
  return 0;
}
