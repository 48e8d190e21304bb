#include "engine/vlm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/timer.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "vision/family_gemma3.h"
#include "vision/family_idefics3.h"
#include "vision/family_internvl.h"
#include "vision/family_lfm2.h"
#include "vision/family_qwen2vl.h"
#include "vision/projector.h"

namespace edgevlm {

TilingConfig tiling_config_for(const VisionConfig& c, const TilingOverrides& o) {
  TilingConfig t;
  t.strategy = parse_tiling_strategy(o.strategy.empty() ? c.tiling_policy : o.strategy);
  t.tile_size = c.image_size;
  t.max_tiles = o.max_tiles > 0 ? o.max_tiles : c.max_tiles;
  // α is an f32 key; widening it (0.1f → 0.10000000149…) is what the training code does too.
  t.alpha = o.alpha >= 0 ? o.alpha : double(c.tiling_alpha);
  t.thumbnail = c.thumbnail ? ThumbnailPlacement::Last : ThumbnailPlacement::None;
  t.mean = c.image_mean;
  t.std = c.image_std;
  if (c.projector == ProjectorType::Idefics3) idefics3_tiling(c, t);
  if (c.projector == ProjectorType::InternVL) internvl_tiling(c, t);
  if (c.projector == ProjectorType::Lfm2 && (t.strategy == TilingStrategy::Lfm2 || t.strategy == TilingStrategy::Lfm2Mtmd))
    lfm2_tiling(c, t);
  if (c.projector == ProjectorType::Gemma3) gemma3_tiling(c, t);
  const bool qwen = c.projector == ProjectorType::Qwen2VL || c.projector == ProjectorType::Qwen25VL;
  if (qwen) qwen2vl_tiling(c, t);
  if (o.resample == "mtmd") {
    EV_CHECK(c.projector != ProjectorType::Lfm2 || t.strategy == TilingStrategy::Lfm2Mtmd,
             "--resample mtmd: for LFM2-VL use --tiling lfm2-mtmd (which resamples as mtmd does)");
    if (c.projector == ProjectorType::Idefics3) idefics3_mtmd_resampling(t);  // with --tiling idefics3-mtmd
    else if (c.projector == ProjectorType::InternVL) internvl_mtmd_resampling(t);
    else if (c.projector == ProjectorType::Gemma3) gemma3_mtmd_resampling(t);
    else if (qwen) qwen2vl_mtmd_resampling(c, t);
  } else if (!o.resample.empty()) {
    const size_t comma = o.resample.find(',');
    t.filter = parse_resample_filter(o.resample.substr(0, comma));
    t.thumbnail_filter.reset();
    if (comma != std::string::npos) t.thumbnail_filter = parse_resample_filter(o.resample.substr(comma + 1));
  }
  t.validate();
  return t;
}

int ImageEmbeddings::positions() const {
  int n = n_tiles * tokens_per_tile;
  if (thumbnail_index >= 0 && thumbnail_tokens > 0) n += thumbnail_tokens - tokens_per_tile;
  return n;
}

const float* ImageEmbeddings::tile(int i) const {
  size_t row = size_t(i) * tokens_per_tile;
  if (thumbnail_index >= 0 && i > thumbnail_index) row += size_t(tile_positions(thumbnail_index) - tokens_per_tile);
  return data.data() + row * n_embd;
}

namespace {

// The ViT, merge and projector over an image's tiles: the grid tiles as one run of batches, and a
// thumbnail of its own size (LFM2-VL) as a run of its own, its embeddings kept at its index.
// source(i, scratch) gives tile i's pixels (TileSource); thumb_w × thumb_h is the thumbnail's size.
ImageEmbeddings encode(const MmprojModel& m, const TileSource& source, Grid grid, int n_tiles, int thumbnail_index,
                       int thumb_w, int thumb_h, int tile_size, ThreadPool& pool, VitOptions vit, bool keep_vit_out) {
  const VisionConfig& c = m.config();
  const bool native = tile_size == c.image_size;
  const PatchGrid tile_grid = native ? PatchGrid{} : PatchGrid{tile_size / c.patch_size, tile_size / c.patch_size};
  const bool own_thumb = thumbnail_index >= 0 && (thumb_w != tile_size || thumb_h != tile_size);
  ImageEmbeddings e;
  e.grid = grid;
  e.n_tiles = n_tiles;
  e.thumbnail_index = thumbnail_index;
  e.tokens_per_tile = merged_tokens(c, tile_grid);
  e.n_embd = c.projection_dim;
  e.bidirectional = c.bidirectional_image_attention;
  e.mrope = c.mrope_positions;
  e.tile_token_grid = merged_grid(c, tile_grid);
  const int n_grid = own_thumb ? n_tiles - 1 : n_tiles;
  const int first = own_thumb && thumbnail_index == 0 ? 1 : 0;  // the grid tiles' first index
  VitOptions grid_opt = vit;
  grid_opt.patches = tile_grid;
  std::vector<float> out = vit_forward(
      m, [&](int i, float* scratch) { return source(first + i, scratch); }, n_grid, pool, grid_opt, &e.vit_timings);
  Timer t;
  e.data = project_tiles(m, out.data(), n_grid, pool, tile_grid);
  e.projector_ms = t.elapsed_ms();
  if (own_thumb) {
    VitOptions thumb_opt = vit;
    thumb_opt.patches = {thumb_w / c.patch_size, thumb_h / c.patch_size};
    VitTimings tt;
    std::vector<float> thumb_out =
        vit_forward(m, [&](int, float* scratch) { return source(thumbnail_index, scratch); }, 1, pool, thumb_opt, &tt);
    t.reset();
    std::vector<float> thumb = project_tiles(m, thumb_out.data(), 1, pool, thumb_opt.patches);
    e.projector_ms += t.elapsed_ms();
    e.thumbnail_tokens = merged_tokens(c, thumb_opt.patches);
    e.thumbnail_token_grid = merged_grid(c, thumb_opt.patches);
    e.data.insert(thumbnail_index == 0 ? e.data.begin() : e.data.end(), thumb.begin(), thumb.end());
    if (keep_vit_out) out.insert(thumbnail_index == 0 ? out.begin() : out.end(), thumb_out.begin(), thumb_out.end());
    e.vit_timings.prepare_ms += tt.prepare_ms;
    e.vit_timings.blocks_ms += tt.blocks_ms;
    e.vit_timings.wall_ms += tt.wall_ms;
    e.vit_timings.n_batches += tt.n_batches;
  }
  e.vit_ms = e.vit_timings.wall_ms;
  if (keep_vit_out) e.vit_out = std::move(out);
  return e;
}

}  // namespace

ImageEmbeddings encode_tiles(const MmprojModel& m, const TiledImage& tiles, ThreadPool& pool, VitOptions vit,
                             bool keep_vit_out) {
  const VisionConfig& c = m.config();
  EV_CHECK(tiles.tile_size == c.image_size || c.interpolate_positions,
           "image tiles are %d pixels but the vision model takes %d", tiles.tile_size, c.image_size);
  EV_CHECK(tiles.n_tiles >= 0 && tiles.data.size() == (tiles.n_tiles > 0 ? tiles.offset(tiles.n_tiles - 1) +
                                                                               tiles.floats(tiles.n_tiles - 1)
                                                                         : 0),
           "image tiles: %zu floats for %d tiles", tiles.data.size(), tiles.n_tiles);
  const int tw = tiles.thumbnail_index >= 0 ? tiles.thumb_w : tiles.tile_size;
  const int th = tiles.thumbnail_index >= 0 ? tiles.thumb_h : tiles.tile_size;
  return encode(
      m, [&tiles](int i, float*) { return tiles.tile(i); }, tiles.grid, tiles.n_tiles, tiles.thumbnail_index, tw, th,
      tiles.tile_size, pool, vit, keep_vit_out);
}

ImageEmbeddings encode_image(const MmprojModel& m, const Image& img, const TilingConfig& cfg, ThreadPool& pool,
                             VitOptions vit, bool keep_vit_out) {
  EV_CHECK(cfg.tile_size == m.config().image_size || m.config().interpolate_positions,
           "image tiles are %d pixels but the vision model takes %d", cfg.tile_size, m.config().image_size);
  Timer t;
  const ImageTiler tiler(img, cfg);
  const double pre_ms = t.elapsed_ms();
  ImageEmbeddings e = encode(
      m,
      [&tiler](int i, float* scratch) {
        tiler.emit(i, scratch);
        return static_cast<const float*>(scratch);
      },
      tiler.grid(), tiler.n_tiles(), tiler.thumbnail_index(), tiler.thumb_w(), tiler.thumb_h(), tiler.tile_size(), pool,
      vit, keep_vit_out);
  e.preprocess_ms = pre_ms;
  return e;
}

int count_image_placeholders(std::string_view text) {
  int n = 0;
  for (size_t pos = text.find(kImagePlaceholder); pos != std::string_view::npos;
       pos = text.find(kImagePlaceholder, pos + kImagePlaceholder.size()))
    ++n;
  return n;
}

std::string add_image_placeholders(std::string text, int n_images) {
  const int have = count_image_placeholders(text);
  EV_CHECK(have <= n_images, "the prompt places %d images (%.*s) but %d %s given", have,
           int(kImagePlaceholder.size()), kImagePlaceholder.data(), n_images, n_images == 1 ? "was" : "were");
  std::string prefix;
  for (int i = have; i < n_images; ++i) prefix += std::string(kImagePlaceholder) + "\n";
  return prefix + text;
}

ImageMarkers image_markers(const VisionConfig& c, const Tokenizer& tok, TilingStrategy strategy) {
  auto ids = [&](const std::string& s) -> std::vector<int32_t> {
    if (s.empty()) return {};
    const int32_t id = tok.find_token(s);
    if (id >= 0) return {id};
    return tok.encode(s, false, true);
  };
  ImageMarkers mk{ids(c.image_start), ids(c.image_end), ids(c.tile_separator), ids(c.row_separator), {}, 0, {}, {},
                  // mtmd lays out an LFM2-VL image that is not cut as a lone thumbnail, marker included
                  c.thumbnail_markers_alone || strategy == TilingStrategy::Lfm2Mtmd};
  for (const std::string& s : c.thumbnail_start) for (int32_t id : ids(s)) mk.thumb_start.push_back(id);
  for (const std::string& s : c.thumbnail_end) for (int32_t id : ids(s)) mk.thumb_end.push_back(id);
  if (!c.tile_marker_format.empty()) {
    // Every tile of every grid of at most T tiles: the model's own rule, its max_tiles and what
    // --max-tiles allows (64). Tile (c, r) is in such a grid only if (c + 1)·(r + 1) ≤ T.
    const int side_tiles = c.longest_edge > 0 ? (c.longest_edge + c.image_size - 1) / c.image_size : 1;
    const int T = std::max({c.max_tiles, 64, side_tiles * side_tiles});
    mk.tile_start_cols = T;
    mk.tile_start.resize(size_t(T) * T);
    for (int r = 0; r < T; ++r)
      for (int col = 0; (col + 1) * (r + 1) <= T; ++col) {
        char buf[256];
        std::snprintf(buf, sizeof buf, c.tile_marker_format.c_str(), r + 1, col + 1);
        mk.tile_start[size_t(r) * T + col] = tok.encode(buf, false, true);
      }
  }
  return mk;
}

std::vector<LayoutItem> image_layout(const ImageEmbeddings& img, const ImageMarkers& mk) {
  std::vector<LayoutItem> seq;
  auto markers = [&](const std::vector<int32_t>& ids) {
    for (int32_t id : ids) seq.push_back({id, -1});
  };
  const int grid_tiles = img.n_tiles - (img.thumbnail_index >= 0 ? 1 : 0);  // 0: the thumbnail alone
  const bool thumb_first = img.thumbnail_index == 0 && grid_tiles > 0;
  const bool own_thumb_markers = !mk.thumb_start.empty() || !mk.thumb_end.empty();
  auto thumbnail = [&] {
    const bool marked = grid_tiles > 0 || mk.thumb_markers_alone;
    if (marked) markers(mk.thumb_start);
    seq.push_back({-1, img.thumbnail_index});
    if (marked) markers(mk.thumb_end);
  };
  const int first_grid = thumb_first ? 1 : 0;
  markers(mk.start);
  if (thumb_first) {
    thumbnail();
    if (!own_thumb_markers) markers(mk.row_sep);
  }
  if (grid_tiles > 0)
    for (int r = 0; r < img.grid.n; ++r)
      for (int c = 0; c < img.grid.m; ++c) {
        if (r > 0 && c == 0) markers(mk.row_sep);
        else if (c > 0) markers(mk.tile_sep);
        if (!mk.tile_start.empty()) {
          EV_CHECK(c < mk.tile_start_cols && r < mk.tile_start_cols, "grid %dx%d: no tile marker for row %d, column %d",
                   img.grid.m, img.grid.n, r + 1, c + 1);
          markers(mk.tile_start[size_t(r) * mk.tile_start_cols + c]);
        }
        seq.push_back({-1, first_grid + r * img.grid.m + c});
      }
  if (img.thumbnail_index >= 0 && !thumb_first) {
    if (!own_thumb_markers && grid_tiles > 0) markers(mk.row_sep);
    thumbnail();
  }
  markers(mk.end);
  return seq;
}

std::vector<int32_t> VlmPrompt::text_tokens() const {
  std::vector<int32_t> out;
  for (int32_t t : tokens)
    if (t >= 0) out.push_back(t);
  return out;
}

VlmPrompt assemble_prompt(const LlmModel& llm, const Tokenizer& tok, const ImageMarkers& markers,
                          std::string_view text, const std::vector<const ImageEmbeddings*>& images, bool add_bos) {
  const int n_embd = llm.config().n_embd;
  const int placed = count_image_placeholders(text);
  EV_CHECK(placed == int(images.size()), "the prompt has %d image places (%.*s) but %zu images were given", placed,
           int(kImagePlaceholder.size()), kImagePlaceholder.data(), images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    EV_CHECK(images[i] != nullptr, "image %zu is missing", i);
    EV_CHECK(images[i]->n_embd == n_embd,
             "image embeddings are %d wide but the language model's width is %d (mmproj and model do not match)",
             images[i]->n_embd, n_embd);
    EV_CHECK(images[i]->data.size() == size_t(images[i]->positions()) * n_embd,
             "image %zu: embedding data does not match its %d tiles", i, images[i]->n_tiles);
  }

  // First the position list: token ids, and (image, tile) for image rows.
  struct Pos {
    int32_t token;
    int image, tile;
  };
  std::vector<Pos> seq;
  size_t begin = 0;
  for (size_t img = 0; img <= images.size(); ++img) {
    const size_t end = img < images.size() ? text.find(kImagePlaceholder, begin) : text.size();
    std::vector<int32_t> ids = tok.encode(text.substr(begin, end - begin), false, true);
    for (int32_t id : ids) seq.push_back({id, -1, -1});
    if (img == images.size()) break;
    for (const LayoutItem& it : image_layout(*images[img], markers)) {
      if (it.token >= 0) seq.push_back({it.token, -1, -1});
      else seq.push_back({-1, int(img), it.tile});
    }
    begin = end + kImagePlaceholder.size();
  }
  const int32_t bos = tok.bos_id();
  if (add_bos && bos >= 0 && (seq.empty() || seq[0].token != bos)) seq.insert(seq.begin(), {bos, -1, -1});
  EV_CHECK(!seq.empty(), "the prompt is empty");

  VlmPrompt p;
  p.n_embd = n_embd;
  p.tokens.reserve(seq.size() + 64);
  for (const Pos& s : seq) {
    if (s.token >= 0) {
      p.tokens.push_back(s.token);
    } else {
      const ImageEmbeddings& im = *images[size_t(s.image)];
      const int n = im.tile_positions(s.tile);
      if (im.bidirectional || im.mrope) {
        const PatchGrid g = im.mrope ? im.token_grid(s.tile) : PatchGrid{};
        p.image_spans.push_back({int(p.tokens.size()), int(p.tokens.size()) + n, im.bidirectional, g.w, g.h});
      }
      p.tokens.insert(p.tokens.end(), size_t(n), -1);
      p.n_image_positions += n;
    }
  }
  p.n_positions = int(p.tokens.size());
  p.embeddings.resize(size_t(p.n_positions) * n_embd);

  // Then the rows: runs of text tokens go through the embedding table together.
  size_t row = 0, i = 0;
  while (i < seq.size()) {
    if (seq[i].token >= 0) {
      size_t j = i;
      std::vector<int32_t> run;
      while (j < seq.size() && seq[j].token >= 0) run.push_back(seq[j++].token);
      llm.embed_tokens(run.data(), int(run.size()), p.embeddings.data() + row * n_embd);
      row += run.size();
      i = j;
    } else {
      const ImageEmbeddings& im = *images[size_t(seq[i].image)];
      const size_t n = size_t(im.tile_positions(seq[i].tile));
      std::memcpy(p.embeddings.data() + row * n_embd, im.tile(seq[i].tile), n * n_embd * sizeof(float));
      row += n;
      ++i;
    }
  }
  EV_CHECK(row == size_t(p.n_positions), "prompt assembly: %zu rows for %d positions", row, p.n_positions);
  return p;
}

}  // namespace edgevlm
