// The integer kernels' weight layouts and the cache of prepared copies (ops/matmul_repack.h).
// Compiled with -mavx2 -mfma -mf16c (the full-group transpose runs in AVX2 registers).
#include "ops/matmul_repack.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "core/pages.h"
#include "ops/matmul_blocks.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace edgevlm::detail {

void pack_group(GGMLType t, const uint8_t* w, size_t ws, int64_t n_out, int64_t g, int64_t b0, int64_t nblk,
                uint8_t* q, uint16_t* d, bool flip) {
  const int qb = packed_qb(t), steps = qb / 32;
  const size_t bb = type_block_bytes(t);
  if ((g + 1) * kGR <= n_out) {
    // A full group: per block, an 8 × (4 or 8) transpose of 32-bit words in registers.
    const uint8_t* rows[kGR];
    for (int r = 0; r < kGR; ++r) rows[r] = w + size_t(g * kGR + r) * ws + size_t(b0) * bb;
    const __m256i flipv = _mm256_set1_epi8(flip ? char(0x80) : 0);
    for (int64_t ib = 0; ib < nblk; ++ib) {
      const size_t off = size_t(ib) * bb;
      for (int r = 0; r < kGR; ++r) std::memcpy(&d[ib * kGR + r], rows[r] + off, 2);
      for (int half = 0; half < steps / 4; ++half) {
        __m256i v[4];
        for (int r = 0; r < 4; ++r)
          v[r] = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r + 4] + off + 2 + 16 * half)),
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + off + 2 + 16 * half)));
        const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
        const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
        __m256i* out = reinterpret_cast<__m256i*>(q + ib * qb + 128 * half);
        _mm256_storeu_si256(out + 0, _mm256_xor_si256(_mm256_unpacklo_epi64(t0, t2), flipv));
        _mm256_storeu_si256(out + 1, _mm256_xor_si256(_mm256_unpackhi_epi64(t0, t2), flipv));
        _mm256_storeu_si256(out + 2, _mm256_xor_si256(_mm256_unpacklo_epi64(t1, t3), flipv));
        _mm256_storeu_si256(out + 3, _mm256_xor_si256(_mm256_unpackhi_epi64(t1, t3), flipv));
      }
    }
    return;
  }
  for (int r = 0; r < kGR; ++r) {
    const int64_t o = g * kGR + r;
    if (o >= n_out) {
      for (int64_t ib = 0; ib < nblk; ++ib) {
        for (int k = 0; k < steps; ++k) std::memset(q + ib * qb + k * 32 + r * 4, flip ? 0x80 : 0, 4);
        d[ib * kGR + r] = 0;
      }
      continue;
    }
    const uint8_t* blk = w + size_t(o) * ws + size_t(b0) * bb;
    for (int64_t ib = 0; ib < nblk; ++ib, blk += bb) {
      std::memcpy(&d[ib * kGR + r], blk, 2);
      for (int k = 0; k < steps; ++k) {
        uint32_t v;
        std::memcpy(&v, blk + 2 + 4 * k, 4);
        if (flip) v ^= 0x80808080u;
        std::memcpy(q + ib * qb + k * 32 + r * 4, &v, 4);
      }
    }
  }
}

void pack_pair(GGMLType t, const uint8_t* w, size_t ws, int64_t n_out, int64_t g, int64_t b0, int64_t nblk, uint8_t* out,
               bool flip) {
  const int qb = packed_qb(t), pq = pair_qbytes(t);
  thread_local Scratch<uint8_t> tmp_buf;
  uint8_t* tq = tmp_buf.get(size_t(nblk) * 2 * size_t(qb + 2 * kGR));
  uint16_t* td = reinterpret_cast<uint16_t*>(tq + 2 * nblk * qb);
  for (int j = 0; j < 2; ++j) pack_group(t, w, ws, n_out, g + j, b0, nblk, tq + j * nblk * qb, td + j * nblk * kGR, flip);
  for (int64_t ib = 0; ib < nblk; ++ib) {
    uint8_t* q = out + pair_steps_offset(pq, ib);
    uint8_t* d = out + pair_scales_offset(pq, ib);
    for (int j = 0; j < 2; ++j) {
      for (int k = 0; k < qb / 32; ++k) std::memcpy(q + 64 * k + 32 * j, tq + (j * nblk + ib) * qb + 32 * k, 32);
      std::memcpy(d + 2 * kGR * j, td + (j * nblk + ib) * kGR, 2 * kGR);
    }
  }
  if (nblk % 2) {  // the unused half of the last super-block
    std::memset(out + pair_steps_offset(pq, nblk), 0, size_t(pq));
    std::memset(out + pair_scales_offset(pq, nblk), 0, kPairScaleBytes);
  }
}

namespace {

struct PackedMatrix {
  AlignedBuf<uint8_t> buf;
  size_t bytes = 0;
  uint64_t fingerprint = 0;
  // Built or claimed by matmul_prepare, whose caller calls matmul_forget before the weights change
  // or go away: served without reading the fingerprint's lines (cold cache lines on cold pages of
  // the original, ~5 µs a product: 1.5% of decode at 1 thread).
  bool prepared = false;
};

struct PackKey {
  const uint8_t* data;
  GGMLType type;
  int64_t n_in, n_out;
  size_t row_stride;
  bool flip;  // Q8_0 stored as q + 128 (VNNI)
  bool split;  // scales apart from the quants (the default), else at each group's end
  bool pairs;  // groups 2j and 2j + 1 interleaved (the 512-bit tiles' layout; with split only)
  bool operator==(const PackKey& o) const {
    return data == o.data && type == o.type && n_in == o.n_in && n_out == o.n_out && row_stride == o.row_stride &&
           flip == o.flip && split == o.split && pairs == o.pairs;
  }
};
struct PackKeyHash {
  size_t operator()(const PackKey& k) const {
    return std::hash<const void*>()(k.data) ^ (size_t(k.n_in) * 0x9E3779B97F4A7C15ull) ^ size_t(k.n_out) ^
           size_t(k.type);
  }
};


// A few cache lines spread over the data: a different matrix mapped at a freed address is told
// apart without reading the whole of it on every product. Line i starts at fingerprint_line(n, i)
// (ascending) and is min(64, n − start) bytes long.
constexpr int kFingerprintLines = 5;
size_t fingerprint_line(size_t n, int i) { return std::min(n - std::min<size_t>(n, 64), (n / 4) * size_t(i)); }

uint64_t fingerprint(const WeightMatrix& w) {
  const size_t n = w.bytes();
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < kFingerprintLines; ++i) {
    const size_t off = fingerprint_line(n, i);
    const size_t len = std::min<size_t>(64, n - off);
    for (size_t j = 0; j + 8 <= len; j += 8) {
      uint64_t v;
      std::memcpy(&v, w.data + off + j, 8);
      h = (h ^ v) * 1099511628211ull;
    }
  }
  return h;
}

std::atomic<bool> g_release_originals{true};
std::atomic<size_t> g_released_bytes{0};

// Once the repacked copy exists the kernels never read the original again: its pages are given
// back when they are clean pages of a read-only file mapping (release_file_pages), so the copy
// replaces the mapped weights in memory instead of doubling them. The pages holding the
// fingerprint's lines stay (it is checked on every product). Anything still reading the original
// (embedding lookups in a tied table, the cache disabled, a later repack) faults it back in.
void release_original(const WeightMatrix& w) {
  if (!g_release_originals.load(std::memory_order_relaxed)) return;
  const size_t n = w.bytes();
  size_t from = 0, released = 0;
  for (int i = 0; i <= kFingerprintLines; ++i) {
    const size_t to = i < kFingerprintLines ? fingerprint_line(n, i) : n;
    if (to > from) released += release_file_pages(w.data + from, to - from);
    if (i < kFingerprintLines) from = std::max(from, std::min(n, to + 64));
  }
  g_released_bytes.fetch_add(released, std::memory_order_relaxed);
}

bool env_no_repack() {
  const char* e = std::getenv("EDGEVLM_NO_REPACK");
  return e && *e && std::strcmp(e, "0") != 0;
}

struct PackCache {
  std::mutex mu;
  std::unordered_map<PackKey, std::unique_ptr<PackedMatrix>, PackKeyHash> map;
  size_t bytes = 0;
  std::atomic<bool> enabled{!env_no_repack()};
  // Bumped (under mu) before any copy is freed: a PreparedMemo entry of an older epoch is stale.
  std::atomic<uint64_t> epoch{1};
};

// Prepared copies found without the lock. Through the mutex, the map's bucket and node and the
// PackedMatrix, each product paid several dependent cache misses, since the previous product's
// weights had just streamed through the caches: 1.6-4 µs per product at 2 threads (TSC stamps).
// Each calling thread remembers the prepared copies it used (direct-mapped by the key's hash; a
// collision just takes the locked path), valid while no copy has been freed since. Decode of
// bluelm-v-3b, tokens alternated with and without it in one process: 0.2-0.9% faster.
struct PreparedMemo {
  PackKey key{};
  const uint8_t* buf = nullptr;
  uint64_t epoch = 0;  // 0: empty
};
constexpr size_t kMemoSlots = 1024;
thread_local PreparedMemo t_prepared_memo[kMemoSlots];

PackCache& pack_cache() {
  static PackCache* c = new PackCache();  // never destroyed: products may run during exit
  return *c;
}

}  // namespace

const uint8_t* packed_weights(const WeightMatrix& w, bool flip, bool split, bool pairs, ThreadPool& pool,
                              bool prepare) {
  PackCache& c = pack_cache();
  const size_t raw = w.bytes();
  if (!c.enabled.load(std::memory_order_relaxed) || raw < kRepackMinBytes) return nullptr;
  const PackKey key{w.data, w.type, w.n_in, w.n_out, w.row_stride, flip, split, pairs};
  PreparedMemo& memo = t_prepared_memo[PackKeyHash()(key) % kMemoSlots];
  const uint64_t epoch = c.epoch.load(std::memory_order_acquire);
  if (memo.epoch == epoch && memo.key == key) return memo.buf;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(key);
    if (it != c.map.end() && it->second->prepared) {
      memo = {key, it->second->buf.get(), epoch};
      return memo.buf;
    }
  }
  const uint64_t fp = fingerprint(w);
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.map.find(key);
  if (it != c.map.end()) {
    if (it->second->fingerprint == fp) {
      it->second->prepared |= prepare;
      return it->second->buf.get();
    }
    c.epoch.fetch_add(1, std::memory_order_acq_rel);
    c.bytes -= it->second->bytes;
    c.map.erase(it);
  }
  const int64_t nb = w.n_in / kQK, n_groups = (w.n_out + kGR - 1) / kGR;
  const CopyLayout layout{w.type, nb, n_groups, split, pairs};
  auto pm = std::make_unique<PackedMatrix>();
  pm->bytes = layout.bytes();
  // On 2 MiB pages where the kernel allows: first-touch faults of 4 KiB pages made the one-time
  // repack cost several times the copying itself (measured: 64 MB took ~210 ms here), and decode
  // streams the buffer every token.
  pm->buf = alloc_huge<uint8_t>(pm->bytes);
  EV_CHECK(pm->buf != nullptr, "matmul: out of memory repacking a %lld x %lld %s matrix", (long long)w.n_out,
           (long long)w.n_in, type_name(w.type).c_str());
  pm->fingerprint = fp;
  pm->prepared = prepare;
  uint8_t* base = pm->buf.get();
  // Called with the cache locked: other callers wait rather than pack the same matrix twice.
  // Units of one group, or of a pair in the pair layout (an odd last group stays on its own).
  const int64_t per_unit = pairs ? 2 : 1;
  pool.parallel_for((n_groups + per_unit - 1) / per_unit, [&](int64_t u0, int64_t u1) {
    for (int64_t g = u0 * per_unit; g < std::min(n_groups, u1 * per_unit); g += per_unit) {
      if (pairs && g + 1 < n_groups)
        pack_pair(w.type, w.data, w.row_stride, w.n_out, g, 0, nb, base + layout.pair_offset(g), flip);
      else
        pack_group(w.type, w.data, w.row_stride, w.n_out, g, 0, nb, base + layout.quant_offset(g),
                   reinterpret_cast<uint16_t*>(base + layout.scale_offset(g)), flip);
    }
  });
  release_original(w);
  c.bytes += pm->bytes;
  return c.map.emplace(key, std::move(pm)).first->second->buf.get();
}

bool packed_cache_enabled() { return pack_cache().enabled.load(); }

size_t matmul_packed_bytes() {
  PackCache& c = pack_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}
size_t matmul_packed_count() {
  PackCache& c = pack_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.map.size();
}
void matmul_packed_drop(const void* data) {
  PackCache& c = pack_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.epoch.fetch_add(1, std::memory_order_acq_rel);
  for (auto it = c.map.begin(); it != c.map.end();) {
    if (it->first.data == data) {
      c.bytes -= it->second->bytes;
      it = c.map.erase(it);
    } else {
      ++it;
    }
  }
}
void matmul_packed_clear() {
  PackCache& c = pack_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.epoch.fetch_add(1, std::memory_order_acq_rel);
  c.map.clear();
  c.bytes = 0;
}
bool matmul_packed_enable(bool on) { return pack_cache().enabled.exchange(on); }
bool matmul_release_originals(bool on) { return g_release_originals.exchange(on); }
size_t matmul_released_bytes() { return g_released_bytes.load(); }

}  // namespace edgevlm::detail

#else  // no AVX2 at compile time (another architecture): no repacked weights.

namespace edgevlm::detail {
// No repacked weights on this architecture.
size_t matmul_packed_bytes() { return 0; }
size_t matmul_packed_count() { return 0; }
void matmul_packed_drop(const void*) {}
void matmul_packed_clear() {}
bool matmul_packed_enable(bool) { return false; }
bool matmul_release_originals(bool) { return false; }
size_t matmul_released_bytes() { return 0; }
const uint8_t* packed_weights(const WeightMatrix&, bool, bool, bool, ThreadPool&, bool) { return nullptr; }
bool packed_cache_enabled() { return false; }
}  // namespace edgevlm::detail

#endif
