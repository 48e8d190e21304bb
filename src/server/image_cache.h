// Image embeddings kept by content: the SHA-256 of the image bytes and the engine's preprocessing
// settings names an entry, so an image sent again (a follow-up question, another client, an
// upload to /v1/images) is encoded once. Bounded in bytes of embeddings, least recently used out;
// an entry still encoding is never evicted. Encoding runs on one background thread, in arrival
// order, so an upload's encode overlaps the user's typing (BlueLM-V-3B's decoupling, over HTTP).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "engine/session.h"

namespace edgevlm {

struct ImageCacheStats {
  uint64_t hits = 0, misses = 0, evictions = 0;
  size_t bytes = 0, entries = 0, encoding = 0;
  double encode_seconds = 0;  // ViT + projector + decode time of every encode
};

class ImageCache {
 public:
  ImageCache(std::shared_ptr<const Engine> engine, size_t max_bytes);
  ~ImageCache();

  struct Ref {
    std::string id;  // "img-" + 32 hex digits
    Session::SharedEmbeddings embeddings;
    bool hit = false;  // already cached (or being encoded)
    int width = 0, height = 0;
  };
  // Checks the image (throws edgevlm::Error naming what is wrong: format, size, pixel limit) and
  // returns its entry, queueing the encode unless it is cached.
  Ref put(std::vector<uint8_t> bytes, int64_t max_pixels);
  // The entry of an id from put(); nullopt when unknown or evicted.
  std::optional<Ref> find(const std::string& id);
  // "encoding", "ready", "failed: why"; empty when unknown.
  std::string status(const std::string& id);
  ImageCacheStats stats() const;

 private:
  struct Entry {
    std::string id;
    std::vector<uint8_t> bytes;  // until encoded
    std::promise<std::shared_ptr<const ImageEmbeddings>> promise;
    Session::SharedEmbeddings future;
    bool done = false;
    std::string error;
    size_t size = 0;  // bytes of embeddings once done
    int width = 0, height = 0;
    std::list<std::string>::iterator lru;
  };
  void worker_main();
  void evict_locked();

  std::shared_ptr<const Engine> engine_;
  const size_t max_bytes_;
  std::string settings_;  // what else decides the embeddings: tiling, model

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> entries_;
  std::list<std::string> lru_;  // most recent first
  std::deque<std::shared_ptr<Entry>> queue_;
  ImageCacheStats stats_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace edgevlm
