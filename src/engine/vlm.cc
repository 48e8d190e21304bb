#include "engine/vlm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/timer.h"
#include "model/llm.h"
#include "model/tokenizer.h"
#include "vision/family_idefics3.h"
#include "vision/family_internvl.h"
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
  if (o.resample == "mtmd") {
    EV_CHECK(c.projector == ProjectorType::Idefics3 || c.projector == ProjectorType::InternVL,
             "--resample mtmd: llama.cpp's mtmd resampling is known here for the idefics3 and internvl families only");
    if (c.projector == ProjectorType::Idefics3) idefics3_mtmd_resampling(t);  // with --tiling idefics3-mtmd
    else internvl_mtmd_resampling(t);
  } else if (!o.resample.empty()) {
    const size_t comma = o.resample.find(',');
    t.filter = parse_resample_filter(o.resample.substr(0, comma));
    t.thumbnail_filter.reset();
    if (comma != std::string::npos) t.thumbnail_filter = parse_resample_filter(o.resample.substr(comma + 1));
  }
  t.validate();
  return t;
}

int ImageEmbeddings::positions() const { return n_tiles * tokens_per_tile; }

namespace {

// The merge and projector after the ViT, and the fields every encode fills.
ImageEmbeddings project(const MmprojModel& m, std::vector<float> vit, Grid grid, int n_tiles, int thumbnail_index,
                        const VitTimings& vt, ThreadPool& pool, bool keep_vit_out) {
  const VisionConfig& c = m.config();
  ImageEmbeddings e;
  e.grid = grid;
  e.n_tiles = n_tiles;
  e.thumbnail_index = thumbnail_index;
  e.tokens_per_tile = c.tokens_per_tile();
  e.n_embd = c.projection_dim;
  e.vit_timings = vt;
  e.vit_ms = vt.wall_ms;
  Timer t;
  e.data = project_tiles(m, vit.data(), n_tiles, pool);
  e.projector_ms = t.elapsed_ms();
  if (keep_vit_out) e.vit_out = std::move(vit);
  return e;
}

}  // namespace

ImageEmbeddings encode_tiles(const MmprojModel& m, const TiledImage& tiles, ThreadPool& pool, VitOptions vit,
                             bool keep_vit_out) {
  const VisionConfig& c = m.config();
  EV_CHECK(tiles.tile_size == c.image_size, "image tiles are %d pixels but the vision model takes %d",
           tiles.tile_size, c.image_size);
  EV_CHECK(tiles.data.size() == size_t(tiles.n_tiles) * tiles.tile_floats(), "image tiles: %zu floats for %d tiles",
           tiles.data.size(), tiles.n_tiles);
  VitTimings vt;
  std::vector<float> out = vit_forward(m, tiles.data.data(), tiles.n_tiles, pool, vit, &vt);
  return project(m, std::move(out), tiles.grid, tiles.n_tiles, tiles.thumbnail_index, vt, pool, keep_vit_out);
}

ImageEmbeddings encode_image(const MmprojModel& m, const Image& img, const TilingConfig& cfg, ThreadPool& pool,
                             VitOptions vit, bool keep_vit_out) {
  EV_CHECK(cfg.tile_size == m.config().image_size, "image tiles are %d pixels but the vision model takes %d",
           cfg.tile_size, m.config().image_size);
  Timer t;
  const ImageTiler tiler(img, cfg);
  const double pre_ms = t.elapsed_ms();
  VitTimings vt;
  std::vector<float> out = vit_forward(
      m,
      [&tiler](int i, float* scratch) {
        tiler.emit(i, scratch);
        return static_cast<const float*>(scratch);
      },
      tiler.n_tiles(), pool, vit, &vt);
  ImageEmbeddings e =
      project(m, std::move(out), tiler.grid(), tiler.n_tiles(), tiler.thumbnail_index(), vt, pool, keep_vit_out);
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

ImageMarkers image_markers(const VisionConfig& c, const Tokenizer& tok) {
  auto ids = [&](const std::string& s) -> std::vector<int32_t> {
    if (s.empty()) return {};
    const int32_t id = tok.find_token(s);
    if (id >= 0) return {id};
    return tok.encode(s, false, true);
  };
  ImageMarkers mk{ids(c.image_start), ids(c.image_end), ids(c.tile_separator), ids(c.row_separator), {}, 0, {}, {}};
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
    markers(mk.thumb_start);
    seq.push_back({-1, img.thumbnail_index});
    markers(mk.thumb_end);
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
      p.tokens.insert(p.tokens.end(), size_t(images[size_t(s.image)]->tokens_per_tile), -1);
      p.n_image_positions += images[size_t(s.image)]->tokens_per_tile;
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
      const size_t n = size_t(im.tokens_per_tile) * n_embd;
      std::memcpy(p.embeddings.data() + row * n_embd, im.tile(seq[i].tile), n * sizeof(float));
      row += size_t(im.tokens_per_tile);
      ++i;
    }
  }
  EV_CHECK(row == size_t(p.n_positions), "prompt assembly: %zu rows for %d positions", row, p.n_positions);
  return p;
}

}  // namespace edgevlm
