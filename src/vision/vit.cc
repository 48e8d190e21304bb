#include "vision/vit.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include "core/error.h"
#include "core/pages.h"
#include "core/timer.h"
#include "ops/activations.h"
#include "ops/matmul.h"
#include "ops/norms.h"
#include "ops/rope.h"
#include "vision/resize.h"
#include "vision/vit_attention.h"

namespace edgevlm {

void unfold_patches(const float* tile_chw, int width, int height, int patch_size, float* out) {
  const int P = patch_size, gw = width / P, gh = height / P;
  const size_t plane = size_t(width) * height;
  for (int py = 0; py < gh; ++py)
    for (int px = 0; px < gw; ++px) {
      float* row = out + (size_t(py) * gw + px) * 3 * P * P;
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < P; ++ky) {
          const float* src = tile_chw + c * plane + size_t(py * P + ky) * width + size_t(px) * P;
          std::memcpy(row + (size_t(c) * P + ky) * P, src, sizeof(float) * P);
        }
    }
}

std::pair<int, int> tile_pixels(const VisionConfig& c, PatchGrid g) {
  const int side = c.patches_per_side();
  if (g.w == side && g.h == side) return {c.image_size, c.image_size};
  return {g.w * c.patch_size, g.h * c.patch_size};
}

std::vector<float> interpolate_positions(const float* table, int side, int d, int w, int h) {
  EV_CHECK(side > 0 && d > 0 && w > 0 && h > 0, "interpolate_positions: invalid sizes %d, %d, %dx%d", side, d, w, h);
  // PyTorch's antialiased bilinear has PIL's bilinear taps and weights (vision/resize.h).
  const ResampleTaps ax = resample_taps(side, w, ResampleFilter::Bilinear);
  const ResampleTaps ay = resample_taps(side, h, ResampleFilter::Bilinear);
  std::vector<float> out(size_t(w) * h * d, 0.0f);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float* o = out.data() + (size_t(y) * w + x) * d;
      for (int j = 0; j < ay.count[size_t(y)]; ++j)
        for (int i = 0; i < ax.count[size_t(x)]; ++i) {
          const float wt = float(ay.w[size_t(y) * ay.ksize + j] * ax.w[size_t(x) * ax.ksize + i]);
          const float* src = table + (size_t(ay.first[size_t(y)] + j) * side + size_t(ax.first[size_t(x)] + i)) * d;
          for (int k = 0; k < d; ++k) o[k] += wt * src[k];
        }
    }
  return out;
}

namespace {

// Row-parallel helpers: the ViT has thousands of rows per batch, so even LayerNorm is worth
// splitting across threads. The model's norm: LayerNorm, or RMSNorm (VisionConfig::rms_norms).
void norm_rows(const VisionConfig& c, const float* x, const std::vector<float>& w, const std::vector<float>& b,
               int64_t n, int64_t rows, float* y, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    if (c.rms_norms)
      rms_norm(x + r0 * n, w.data(), c.eps, n, r1 - r0, y + r0 * n);
    else
      layer_norm(x + r0 * n, w.empty() ? nullptr : w.data(), b.empty() ? nullptr : b.data(), c.eps, n, r1 - r0,
                 y + r0 * n);
  });
}

// Qwen2.5-VL's window attention: the patches regrouped window by window (windows of
// VisionConfig::window_patches² patches, row-major over the grid, cut at its right and bottom
// edges; inside a window, row-major), so that each window's attention is one contiguous call.
// order[i]: the patch (row-major index) at stream row i; windows: [start, length) of each.
struct WindowLayout {
  std::vector<int32_t> order;
  std::vector<std::pair<int64_t, int64_t>> windows;
};
WindowLayout window_layout(PatchGrid g, int side) {
  WindowLayout w;
  for (int wy = 0; wy < g.h; wy += side)
    for (int wx = 0; wx < g.w; wx += side) {
      const int64_t start = int64_t(w.order.size());
      for (int y = wy; y < std::min(wy + side, g.h); ++y)
        for (int x = wx; x < std::min(wx + side, g.w); ++x) w.order.push_back(y * g.w + x);
      w.windows.push_back({start, int64_t(w.order.size()) - start});
    }
  return w;
}

// y = x·Wᵀ + bias, or y += that (a residual), into rows ldy apart: the bias and the sum in the
// product's epilogue (ops/matmul.h); plus W's LoRA term when an adapter puts one on the fly.
void linear(const WeightMatrix& w, const std::vector<float>& bias, const float* x, int64_t rows, float* y,
            ThreadPool& pool, MatmulOut out = {}, const LoraWeights* lora = nullptr) {
  out.bias = bias.empty() ? nullptr : bias.data();
  matmul_lora(w, x, rows, y, pool, lora, out);
}

}  // namespace

std::vector<float> vit_forward(const MmprojModel& m, const TileSource& source, int n_tiles, ThreadPool& pool,
                               VitOptions opt, VitTimings* timings) {
  const Timer wall;
  const VisionConfig& c = m.config();
  EV_CHECK(n_tiles >= 0, "vit_forward: negative tile count %d", n_tiles);
  const int side = c.patches_per_side();
  const PatchGrid grid = opt.patches.n() > 0 ? opt.patches : PatchGrid{side, side};
  EV_CHECK(grid.w > 0 && grid.h > 0 && grid.n() <= kMaxPatchesPerTile, "vit_forward: invalid patch grid %d x %d",
           grid.w, grid.h);
  // Position rows: the file's own for its square tile, else resized to the grid where the family does so.
  std::vector<float> resized_pos;
  if ((grid.w != side || grid.h != side) && !c.rope_2d) {
    EV_CHECK(c.interpolate_positions && m.class_embd.empty(),
             "vit_forward: this vision model encodes %dx%d-patch tiles only, not %dx%d", side, side, grid.w, grid.h);
    resized_pos = interpolate_positions(m.pos_embd.data(), side, c.n_embd, grid.w, grid.h);
  }
  // Null with 2-D RoPE (Qwen2-VL): positions enter every attention instead.
  const float* pos_table = !resized_pos.empty() ? resized_pos.data() : m.pos_embd.empty() ? nullptr : m.pos_embd.data();
  EV_CHECK(pos_table || c.rope_2d, "vit_forward: the vision model has no position embeddings");
  const int64_t N = grid.n(), D = c.n_embd, F = c.n_ff, PD = c.patch_dim();
  // Tokens per tile in the residual stream: the patches, then the class token when the ViT has one.
  const bool cls = !m.class_embd.empty();
  const int64_t S = N + (cls ? 1 : 0);
  // Patch p's position row: p, or p + 1 when the class token takes row 0 (InternViT's own order).
  const int64_t pos_shift = cls && !c.class_position_last ? 1 : 0;
  const auto [pixel_w, pixel_h] = tile_pixels(c, grid);
  const size_t tile_floats = size_t(3) * pixel_w * pixel_h;
  std::vector<float> result(size_t(n_tiles) * S * D);
  VitTimings tm;
  const int batch = opt.batch < 1 || opt.batch > n_tiles ? n_tiles : opt.batch;
  tm.n_batches = n_tiles == 0 ? 0 : (n_tiles + batch - 1) / batch;

  // Stage 1 of batch k: its tiles' pixels, unfolded into patch rows, through the patch embedding
  // and + position embeddings, into the batch's rows of `result` (where its residual stream lives).
  struct PrepBuffers {
    std::vector<float> patches;
    std::unique_ptr<float[]> pixels;  // scratch for the source; uninitialised, so untouched unless used
  };
  auto prepare = [&](int k, PrepBuffers& buf, ThreadPool& p) {
    const int t0 = k * batch, bt = std::min(batch, n_tiles - t0);
    const int64_t rows = int64_t(bt) * N;
    if (buf.patches.empty()) {
      buf.patches.resize(size_t(int64_t(batch) * N * PD));
      buf.pixels.reset(new float[size_t(batch) * tile_floats]);
    }
    float* h = result.data() + size_t(t0) * S * D;
    p.parallel_for(bt, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const float* px = source(int(t0 + b), buf.pixels.get() + size_t(b) * tile_floats);
        unfold_patches(px, pixel_w, pixel_h, c.patch_size, buf.patches.data() + size_t(b * N * PD));
      }
    });
    if (!cls) {
      matmul(m.patch_embd, buf.patches.data(), rows, h, p);
    } else {
      // Each tile's N patch rows, then its class token: class_embd (no patch bias; the bias and
      // position embedding loop below skips it) + its position row (0, or N: class_position_last).
      for (int b = 0; b < bt; ++b) matmul(m.patch_embd, buf.patches.data() + size_t(b) * N * PD, N, h + size_t(b) * S * D, p);
      for (int b = 0; b < bt; ++b) {
        float* hc = h + (size_t(b) * S + N) * D;
        const float* pe = pos_table + (c.class_position_last ? N : 0) * D;
        for (int64_t i = 0; i < D; ++i) hc[i] = m.class_embd[size_t(i)] + pe[i];
      }
    }
    p.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* hr = h + ((r / N) * S + r % N) * D;
        if (!pos_table) {
          for (int64_t i = 0; i < D; ++i) hr[i] += m.patch_bias[size_t(i)];
          continue;
        }
        const float* pe = pos_table + (r % N + pos_shift) * D;
        for (int64_t i = 0; i < D; ++i) hr[i] += m.patch_bias[size_t(i)] + pe[i];
      }
    });
  };

  const int64_t max_rows = int64_t(batch) * S;
  // Activations, written before they are read (no zero fill), on 2 MiB pages (core/pages.h).
  auto activations = [](int64_t n) {
    HugeBuffer<float> b = alloc_huge<float>(size_t(n));
    EV_CHECK(b != nullptr, "vit_forward: out of memory for %lld activations", (long long)n);
    return b;
  };
  // The GELU output in rows of the down-projection's width: a padded one (MmprojModel::blocks)
  // reads zeros past n_ff.
  int64_t FP = F;
  for (const VitBlock& blk : m.blocks) {
    EV_CHECK(blk.down.n_in >= F, "vit_forward: down-projection has %lld inputs, fewer than n_ff %lld",
             (long long)blk.down.n_in, (long long)F);
    FP = std::max(FP, blk.down.n_in);
  }
  const bool swiglu_mlp = c.vit_act == VitAct::SwiGLU;
  const LoraWeights* lora = m.lora();
  const HugeBuffer<float> x = activations(max_rows * D), q = activations(max_rows * D), k = activations(max_rows * D),
                          v = activations(max_rows * D), a = activations(max_rows * D), ff = activations(max_rows * FP),
                          ff_up = activations(swiglu_mlp ? max_rows * F : 1);
  // 2-D RoPE (Qwen2-VL): each stream row's (row, column) rotation table, and with window attention
  // the window-by-window order of the rows.
  const int HD = c.head_dim();
  WindowLayout win;
  std::vector<float> rope2d;
  if (c.rope_2d) {
    EV_CHECK(!cls && HD % 4 == 0, "vit_forward: 2-D RoPE needs a head size that is a multiple of 4, got %d", HD);
    EV_CHECK(grid.w % 2 == 0 && grid.h % 2 == 0, "vit_forward: a %d x %d patch grid cannot be merged 2 x 2", grid.w,
             grid.h);
    bool any_window = false;
    for (int l = 0; l < c.n_layer; ++l) any_window = any_window || c.window_layer(l);
    if (any_window) win = window_layout(grid, c.window_patches);
    std::vector<int32_t> pos3(size_t(3 * N));
    for (int64_t i = 0; i < N; ++i) {
      const int64_t p = win.order.empty() ? i : win.order[size_t(i)];
      pos3[size_t(3 * i)] = int32_t(p / grid.w);
      pos3[size_t(3 * i + 1)] = int32_t(p % grid.w);
      pos3[size_t(3 * i + 2)] = 0;
    }
    rope2d.resize(size_t(N * HD));
    // As ggml_rope_multi in vision mode: head_dim/2 pairs (i, i + head_dim/2), the first quarter by
    // the row, the second by the column, theta_scale = 10000^(−2 / (head_dim/2)).
    rope_table_sections(HD / 2, std::pow(10000.0f, -2.0f / float(HD / 2)), {HD / 4, HD / 4, 0, true}, pos3.data(), N,
                        rope2d.data());
  }
  int64_t ff_width = 0;  // the row width ff's padding was zeroed for
  const float scale = 1.0f / std::sqrt(float(c.head_dim()));
  // The INT8 ViT's attention runs on bf16 products where the CPU has them (twice the f32 rate, a
  // fifth of the ViT's work at 384 px); float files keep f32 attention, the reference's arithmetic.
  const bool bf16_attention = !m.blocks.empty() && (m.blocks[0].q.type == GGMLType::Q8_0 ||
                                                    m.blocks[0].q.type == GGMLType::Q4_0);
  // Stage 2 of batch kb: the transformer blocks and the post-LN, on the pool.
  auto blocks = [&](int kb) {
    const int t0 = kb * batch, bt = std::min(batch, n_tiles - t0);
    const int64_t rows = int64_t(bt) * S;
    float* h = result.data() + size_t(t0) * S * D;
    // h += scale ⊙ y, row by row (layer scale).
    auto add_scaled = [&](const float* y, const std::vector<float>& scale_v) {
      pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t i = 0; i < D; ++i) h[r * D + i] += scale_v[size_t(i)] * y[r * D + i];
      });
    };
    // Window attention regroups each tile's rows window by window for the blocks, and back after.
    auto permute = [&](bool to_windows) {
      if (win.order.empty()) return;
      for (int b = 0; b < bt; ++b) {
        float* ht = h + size_t(b) * S * D;
        for (int64_t i = 0; i < N; ++i) {
          const int64_t p = win.order[size_t(i)];
          std::memcpy(x.get() + (to_windows ? i : p) * D, ht + (to_windows ? p : i) * D, sizeof(float) * size_t(D));
        }
        std::memcpy(ht, x.get(), sizeof(float) * size_t(N * D));
      }
    };
    permute(true);
    for (int l = 0; l < c.n_layer; ++l) {
      const VitBlock& blk = m.blocks[size_t(l)];
      norm_rows(c, h, blk.ln1_w, blk.ln1_b, D, rows, x.get(), pool);
      linear(blk.q, blk.q_b, x.get(), rows, q.get(), pool, {}, lora);
      linear(blk.k, blk.k_b, x.get(), rows, k.get(), pool, {.same_x = true}, lora);
      linear(blk.v, blk.v_b, x.get(), rows, v.get(), pool, {.same_x = true}, lora);
      if (c.rope_2d) {
        pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            const float* cs = rope2d.data() + (r % S) * HD;
            rope_apply(RopeType::NeoX, q.get() + r * D, c.n_head, HD, HD, cs);
            rope_apply(RopeType::NeoX, k.get() + r * D, c.n_head, HD, HD, cs);
          }
        });
      }
      if (c.window_layer(l)) {
        for (int b = 0; b < bt; ++b)
          for (const auto& [start, len] : win.windows) {
            const int64_t off = (int64_t(b) * S + start) * D;
            vit_attention(q.get() + off, k.get() + off, v.get() + off, a.get() + off, 1, int(len), c.n_head, HD, scale,
                          pool, bf16_attention);
          }
      } else {
        vit_attention(q.get(), k.get(), v.get(), a.get(), bt, int(S), c.n_head, HD, scale, pool, bf16_attention);
      }
      if (blk.ls1.empty()) {
        linear(blk.o, blk.o_b, a.get(), rows, h, pool, {.accumulate = true}, lora);
      } else {
        linear(blk.o, blk.o_b, a.get(), rows, x.get(), pool, {}, lora);
        add_scaled(x.get(), blk.ls1);
      }

      norm_rows(c, h, blk.ln2_w, blk.ln2_b, D, rows, x.get(), pool);
      const int64_t fi = blk.down.n_in;
      if (fi == F) {
        ff_width = 0;  // rows of n_ff cover any earlier padding
      } else if (fi != ff_width) {
        std::memset(ff.get(), 0, size_t(max_rows * fi) * sizeof(float));
        ff_width = fi;
      }
      if (swiglu_mlp) {  // silu(gate) ⊙ up
        linear(blk.gate, blk.gate_b, x.get(), rows, ff.get(), pool, {.ldy = fi}, lora);
        linear(blk.up, blk.up_b, x.get(), rows, ff_up.get(), pool, {.same_x = true}, lora);
      } else {
        linear(blk.up, blk.up_b, x.get(), rows, ff.get(), pool, {.ldy = fi}, lora);
      }
      pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* fr = ff.get() + r * fi;
          if (c.vit_act == VitAct::GeluTanh) gelu_tanh(fr, F);
          else if (c.vit_act == VitAct::GeluQuick) gelu_quick(fr, F);
          else swiglu(fr, ff_up.get() + r * F, F);
        }
      });
      if (blk.ls2.empty()) {
        linear(blk.down, blk.down_b, ff.get(), rows, h, pool, {.accumulate = true}, lora);
      } else {
        linear(blk.down, blk.down_b, ff.get(), rows, x.get(), pool, {}, lora);
        add_scaled(x.get(), blk.ls2);
      }
    }
    if (!m.post_ln_w.empty()) norm_rows(c, h, m.post_ln_w, m.post_ln_b, D, rows, h, pool);
    permute(false);
  };

  PrepBuffers main_buf;
  if (!opt.pipeline || tm.n_batches < 2) {
    for (int kb = 0; kb < tm.n_batches; ++kb) {
      Timer t;
      prepare(kb, main_buf, pool);
      tm.prepare_ms += t.elapsed_ms();
      t.reset();
      blocks(kb);
      tm.blocks_ms += t.elapsed_ms();
    }
  } else {
    tm.pipelined = true;
    Timer t;
    prepare(0, main_buf, pool);  // nothing to overlap with yet: all threads on it
    tm.prepare_ms += t.elapsed_ms();
    // The producer prepares batches 1, 2, … on one thread of its own, running ahead of the blocks
    // (each batch has its own rows in `result`, so it never waits for them).
    std::mutex mu;
    std::condition_variable cv;
    int ready = 1;  // batches [0, ready) are prepared
    std::exception_ptr error;
    double producer_ms = 0;
    std::jthread producer([&](std::stop_token st) {
      try {
        ThreadPool one(1);
        PrepBuffers buf;
        for (int kb = 1; kb < tm.n_batches && !st.stop_requested(); ++kb) {
          Timer pt;
          prepare(kb, buf, one);
          producer_ms += pt.elapsed_ms();
          std::lock_guard<std::mutex> lk(mu);
          ready = kb + 1;
          cv.notify_one();
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        error = std::current_exception();
        cv.notify_one();
      }
    });  // declared after everything it uses: on an exception below it is stopped and joined first
    for (int kb = 0; kb < tm.n_batches; ++kb) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return ready > kb || error; });
        if (ready <= kb) std::rethrow_exception(error);
      }
      t.reset();
      blocks(kb);
      tm.blocks_ms += t.elapsed_ms();
    }
    producer.join();
    tm.prepare_ms += producer_ms;
  }
  if (cls) {  // drop each tile's class token: N rows per tile, as without one
    for (int t = 1; t < n_tiles; ++t)
      std::memmove(result.data() + size_t(t) * N * D, result.data() + size_t(t) * S * D, sizeof(float) * size_t(N * D));
    result.resize(size_t(n_tiles) * N * D);
  }
  tm.wall_ms = wall.elapsed_ms();
  if (timings) *timings = tm;
  return result;
}

std::vector<float> vit_forward(const MmprojModel& m, const float* tiles, int n_tiles, ThreadPool& pool, VitOptions opt,
                               VitTimings* timings) {
  const VisionConfig& c = m.config();
  const int side = c.patches_per_side();
  const auto [w, h] = tile_pixels(c, opt.patches.n() > 0 ? opt.patches : PatchGrid{side, side});
  const size_t tile_floats = size_t(3) * w * h;
  return vit_forward(
      m, [tiles, tile_floats](int i, float*) { return tiles + size_t(i) * tile_floats; }, n_tiles, pool, opt,
      timings);
}

}  // namespace edgevlm
