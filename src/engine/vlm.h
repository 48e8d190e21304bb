// The vision-language path: images → tiles → ViT → projector → image embeddings, and prompt
// assembly, which splices those embeddings into the text at the chat template's image places.
//
// Image places: the user's text carries one placeholder kImagePlaceholder ("<image>") per image, in
// order (add_image_placeholders puts "<image>\n" in front for images the text does not place, as
// llama.cpp's mtmd does). The chat template keeps the placeholder verbatim; assemble_prompt then
// cuts the rendered prompt at each placeholder and puts the image's sequence there
// (docs/FORMAT.md §2), with the marker tokens the mmproj names (edgevlm.image.*):
//   <image> tile(0,0) <tile> tile(1,0) … <row> tile(0,1) … tile(m−1,n−1) [<row> thumbnail] </image>
// (thumbnail first when the tiling puts it first: <image> thumbnail <row> tile(0,0) …). Markers
// the file leaves empty are left out. The text between images is tokenised with special tokens.
// A model family (src/vision/family_*.h) may also put a marker naming its position before each grid
// tile (VisionConfig::tile_marker_format) and its own markers around the thumbnail instead of the
// row separator (VisionConfig::thumbnail_start / thumbnail_end): SmolVLM's
//   <fake_token_around_image><row_1_col_1> tile … \n … \n\n<fake_token_around_image><global-img> thumbnail
//   <fake_token_around_image>
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "model/llm.h"
#include "vision/dynamic_resolution.h"
#include "vision/image.h"
#include "vision/mmproj.h"
#include "vision/vit.h"

namespace edgevlm {

class LlmModel;
class Tokenizer;

inline constexpr std::string_view kImagePlaceholder = "<image>";

// Per-run choices that override the model's edgevlm.tiling.* keys (unset: the model's value).
struct TilingOverrides {
  std::string strategy;  // "relaxed" | "llava-next" | "internvl" | "single"; "" = model's
  int max_tiles = 0;     // 0 = model's
  double alpha = -1;     // < 0 = model's
  // Resampling filter (resize.h) of the grid's canvas and the thumbnail: "bicubic", "lanczos",
  // "llama-cpp-bicubic", "llama-cpp-bilinear", "CANVAS,THUMBNAIL", or "mtmd" (what llama.cpp's
  // mtmd uses for the model's family); "" = the family's own.
  std::string resample;
};

// The tiling the model asks for (tile size, policy, α, max tiles, thumbnail, mean/std), with overrides.
TilingConfig tiling_config_for(const VisionConfig& c, const TilingOverrides& o = {});

struct ImageEmbeddings {
  Grid grid;
  int n_tiles = 0;           // grid tiles + thumbnail
  int thumbnail_index = -1;  // -1: none
  int tokens_per_tile = 0;
  int thumbnail_tokens = 0;  // the thumbnail's positions when it has its own size (LFM2-VL); 0: a tile's
  bool bidirectional = false;  // each tile's positions attend to each other both ways in the decoder (Gemma 3)
  bool mrope = false;          // each tile's positions take 2-D M-RoPE coordinates in the decoder (Qwen2-VL)
  PatchGrid tile_token_grid, thumbnail_token_grid;  // merged tokens across × down of a tile, of the thumbnail
  int n_embd = 0;
  std::vector<float> data;     // each tile's positions × n_embd, tiles in TiledImage order
  std::vector<float> vit_out;  // each tile's patches × vit width, in the same order, only when asked for
  // preprocess: grid choice and the resize onto the canvas (cutting the tiles, the thumbnail's
  // resize and normalising are part of the ViT's prepare stage, so that they can be pipelined).
  double preprocess_ms = 0, vit_ms = 0, projector_ms = 0;
  VitTimings vit_timings;  // the ViT's stages (prepare / blocks / wall / hidden by the pipeline)
  int positions() const;       // embedding positions of the image alone (markers not counted)
  int tile_positions(int i) const {
    return i == thumbnail_index && thumbnail_tokens > 0 ? thumbnail_tokens : tokens_per_tile;
  }
  const float* tile(int i) const;
  PatchGrid token_grid(int i) const { return i == thumbnail_index && thumbnail_tokens > 0 ? thumbnail_token_grid : tile_token_grid; }
};

// Preprocesses (dynamic resolution) and encodes one image: ViT batched vit.batch tiles at a time
// (pipelined when vit.pipeline: the next batch's tiles are cut, normalised and patch-embedded
// while the current batch runs), then the merge and projector. An int converts to VitOptions.
ImageEmbeddings encode_image(const MmprojModel& m, const Image& img, const TilingConfig& cfg, ThreadPool& pool,
                             VitOptions vit = {}, bool keep_vit_out = false);
// Same from tiles already preprocessed (TiledImage layout).
ImageEmbeddings encode_tiles(const MmprojModel& m, const TiledImage& tiles, ThreadPool& pool, VitOptions vit = {},
                             bool keep_vit_out = false);

// Number of kImagePlaceholder occurrences in text.
int count_image_placeholders(std::string_view text);
// Prepends "<image>\n" for each image the text does not place. Throws edgevlm::Error when the text
// holds more placeholders than there are images.
std::string add_image_placeholders(std::string text, int n_images);

// Marker token ids, looked up in the LLM vocabulary (a string that is not one token is tokenised).
struct ImageMarkers {
  std::vector<int32_t> start, end, tile_sep, row_sep;
  // Before grid tile (col c, row r): tile_start[r · tile_start_cols + c] (empty: none).
  std::vector<std::vector<int32_t>> tile_start;
  int tile_start_cols = 0;
  std::vector<int32_t> thumb_start, thumb_end;  // empty: row_sep before the thumbnail
  bool thumb_markers_alone = true;              // thumb_start/end also when there is no grid
};
// `strategy`: the tiling the images get (a family's mtmd layout may mark them differently).
ImageMarkers image_markers(const VisionConfig& c, const Tokenizer& tok,
                           TilingStrategy strategy = TilingStrategy::Relaxed);

// One image's sequence: a marker token (token ≥ 0) or all positions of a tile.
struct LayoutItem {
  int32_t token = -1;
  int tile = -1;
};
std::vector<LayoutItem> image_layout(const ImageEmbeddings& img, const ImageMarkers& mk);

struct VlmPrompt {
  int n_positions = 0;
  int n_embd = 0;
  std::vector<float> embeddings;  // n_positions × n_embd
  std::vector<int32_t> tokens;    // per position: the token id, or -1 for an image position
  int n_image_positions = 0;
  // Image runs the decoder reads in its own way: both ways (ImageEmbeddings::bidirectional) or
  // with 2-D M-RoPE coordinates (ImageEmbeddings::mrope).
  std::vector<PositionSpan> image_spans;
  std::vector<int32_t> text_tokens() const;  // tokens without the image positions
};

// Builds the embedding sequence of `text` (the rendered chat prompt with one placeholder per image,
// in order). add_bos prepends the BOS token when the vocabulary has one and the text does not
// begin with it. Throws edgevlm::Error when the placeholder count differs from images.size() or
// an image's width is not the LLM's.
VlmPrompt assemble_prompt(const LlmModel& llm, const Tokenizer& tok, const ImageMarkers& markers,
                          std::string_view text, const std::vector<const ImageEmbeddings*>& images, bool add_bos);

}  // namespace edgevlm
