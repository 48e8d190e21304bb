#include "server/image_cache.h"

#include <cstdio>

#include "core/error.h"
#include "core/sha256.h"
#include "core/timer.h"
#include "vision/image.h"

namespace edgevlm {

ImageCache::ImageCache(std::shared_ptr<const Engine> engine, size_t max_bytes)
    : engine_(std::move(engine)), max_bytes_(max_bytes) {
  const TilingConfig& t = engine_->tiling();
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s|%d|%d|%d|%d|%.6g|%zu|%d|%d|%d|%.6g,%.6g,%.6g|%.6g,%.6g,%.6g",
                engine_->options().mmproj_path.c_str(), int(t.strategy), t.tile_size, t.max_tiles, t.min_tiles,
                t.alpha, t.candidates.size(), int(t.thumbnail), int(t.thumbnail_with_single_tile), int(t.resize),
                t.mean[0], t.mean[1], t.mean[2], t.std[0], t.std[1], t.std[2]);
  settings_ = buf;
  worker_ = std::thread([this] { worker_main(); });
}

ImageCache::~ImageCache() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    for (auto& e : queue_) e->promise.set_exception(std::make_exception_ptr(Error("server shutting down")));
    queue_.clear();
  }
  cv_.notify_all();
  worker_.join();
}

ImageCache::Ref ImageCache::put(std::vector<uint8_t> bytes, int64_t max_pixels) {
  EV_CHECK(engine_->has_vision(), "this model has no vision part (the server was started without --mmproj)");
  ImageLoadOptions limits;
  limits.max_pixels = max_pixels;
  const ImageInfo info = probe_image(bytes.data(), bytes.size(), limits, "image");
  Sha256 h;
  h.update(settings_);
  h.update("\n", 1);
  h.update(bytes.data(), bytes.size());
  const std::string id = "img-" + h.hex_digest().substr(0, 32);

  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second->error.empty()) {
    ++stats_.hits;
    lru_.splice(lru_.begin(), lru_, it->second->lru);
    return {id, it->second->future, true, it->second->width, it->second->height};
  }
  if (it != entries_.end()) {  // a failed encode is retried
    lru_.erase(it->second->lru);
    entries_.erase(it);
  }
  ++stats_.misses;
  auto e = std::make_shared<Entry>();
  e->id = id;
  e->bytes = std::move(bytes);
  e->future = e->promise.get_future().share();
  e->width = info.width;
  e->height = info.height;
  lru_.push_front(id);
  e->lru = lru_.begin();
  entries_[id] = e;
  queue_.push_back(e);
  ++stats_.encoding;
  cv_.notify_one();
  return {id, e->future, false, e->width, e->height};
}

std::optional<ImageCache::Ref> ImageCache::find(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second->lru);
  return Ref{id, it->second->future, true, it->second->width, it->second->height};
}

std::string ImageCache::status(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return {};
  if (!it->second->done) return "encoding";
  return it->second->error.empty() ? "ready" : "failed: " + it->second->error;
}

ImageCacheStats ImageCache::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  ImageCacheStats s = stats_;
  s.entries = entries_.size();
  return s;
}

void ImageCache::worker_main() {
  for (;;) {
    std::shared_ptr<Entry> e;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      e = std::move(queue_.front());
      queue_.pop_front();
    }
    Timer t;
    std::shared_ptr<ImageEmbeddings> emb;
    std::string error;
    try {
      const Image img = load_image_from_memory(e->bytes.data(), e->bytes.size(), {}, e->id);
      const double decode_ms = t.elapsed_ms();
      emb = std::make_shared<ImageEmbeddings>(engine_->encode(img, e->id));
      emb->preprocess_ms += decode_ms;
      emb->vit_out.clear();
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      e->bytes = {};
      e->done = true;
      e->error = error;
      --stats_.encoding;
      stats_.encode_seconds += t.elapsed_ms() / 1000.0;
      if (emb) {
        e->size = emb->data.size() * sizeof(float);
        stats_.bytes += e->size;
      }
      evict_locked();
    }
    if (emb)
      e->promise.set_value(std::move(emb));
    else
      e->promise.set_exception(std::make_exception_ptr(Error(error)));
  }
}

namespace {
constexpr size_t kMaxEntries = 4096;  // failed encodes hold no bytes but still an id
}  // namespace

void ImageCache::evict_locked() {
  // From the least recently used end; entries still encoding stay (a request waits on them).
  for (auto it = lru_.end(); (stats_.bytes > max_bytes_ || entries_.size() > kMaxEntries) && it != lru_.begin();) {
    --it;
    auto found = entries_.find(*it);
    if (found == entries_.end() || !found->second->done) continue;
    stats_.bytes -= found->second->size;
    ++stats_.evictions;
    entries_.erase(found);
    it = lru_.erase(it);
  }
}

}  // namespace edgevlm
