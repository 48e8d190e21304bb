// LoRA adapters on the decoder, in llama.cpp's GGUF adapter format (what convert_lora_to_gguf.py
// writes), and in the same format on the vision model (general.architecture "clip", targets named
// as the mmproj's tensors: MmprojModel::load):
//   general.type = "adapter", adapter.type = "lora", general.architecture = the base model's,
//   adapter.lora.alpha (optional float), and per adapted matrix W (a 2-D tensor of the base file,
//   ne = [n_in, n_out]) the pair
//     <W's name>.lora_a  ne = [n_in, r]   (r rows of n_in: A)
//     <W's name>.lora_b  ne = [r, n_out]  (n_out rows of r: B)
//   in F32, F16, BF16 or Q8_0. The adapted product is y = W·x + s·B·(A·x) with
//   s = user_scale · alpha / r, or s = user_scale when alpha is 0 or absent (as llama.cpp).
//   Tensors named *_norm.weight are ignored (as llama.cpp does); any other name is an error.
//
// Two ways to apply it, chosen per matrix (LoraMode::Auto):
//   - merged at load, W' = W + s·B·A, when W is F32: exact, a private F32 copy of the same size
//     replaces the file's pages, and the forward pass costs nothing more;
//   - on the fly for every other type (F16, BF16, Q8_0, Q4_0, K-quants, ...): merging would round
//     W' back to the file's type (dequantize + requantize), which llama.cpp does not do, so the
//     forward pass adds B·(A·x) after W·x instead, r·(n_in + n_out) multiply-adds per position.
//     All adapters of one matrix are concatenated along the rank (their scales folded into B), so
//     a matrix costs two extra small products whatever the number of adapters.
// LoraMode::OnTheFly keeps every base matrix untouched (the engine's low-memory mode uses it: a
// merged copy could not be dropped from memory like the file's pages).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "ops/matmul.h"

namespace edgevlm {

// One --lora FILE[:SCALE].
struct LoraAdapterSpec {
  std::string path;
  float scale = 1.0f;
};

// "FILE" or "FILE:SCALE". The part after the last ':' is the scale when it is a finite number
// (a path that itself ends in ":<number>" needs an explicit ":1"). Throws edgevlm::Error on an
// empty path or a non-finite scale.
LoraAdapterSpec parse_lora_spec(const std::string& s);

enum class LoraMode { Auto, OnTheFly };

// One adapter file, read and validated on its own: the type keys, the pairing of every lora_a
// with its lora_b, 2-D shapes that agree on a rank >= 1, a supported type, finite values.
// What depends on the base model (architecture, target tensors, their shapes) is checked when it
// is applied (LoraWeights::apply). Every error names the file, and the tensor where there is one.
class LoraAdapter {
 public:
  static std::unique_ptr<LoraAdapter> open(const std::string& path, float scale = 1.0f);
  // The same checks on a file already opened (tests build adapters in memory).
  static std::unique_ptr<LoraAdapter> from_file(std::unique_ptr<GGUFFile> f, float scale = 1.0f);

  struct Pair {
    std::string target;  // the base tensor's name, e.g. "blk.0.attn_q.weight"
    const GGUFTensorInfo* a = nullptr;
    const GGUFTensorInfo* b = nullptr;
    int64_t n_in = 0, rank = 0, n_out = 0;
    float scale = 0;  // the effective s of y += s·B·(A·x)
  };
  const std::string& path() const { return file_->path(); }
  const std::string& arch() const { return arch_; }
  float alpha() const { return alpha_; }
  float user_scale() const { return scale_; }
  const std::vector<Pair>& pairs() const { return pairs_; }
  // A's values (rank rows of n_in) and B's (n_out rows of rank) as F32.
  static std::vector<float> values(const GGUFTensorInfo& t);

 private:
  LoraAdapter() = default;
  std::unique_ptr<GGUFFile> file_;
  std::string arch_;
  float alpha_ = 0, scale_ = 1;
  std::vector<Pair> pairs_;
};

// A matrix of the model that an adapter may target: the base tensor's name, and which of its rows
// the model's matrix holds (a fused tensor, e.g. attn_qkv, is several matrices that are views of
// its rows; an adapter on it adds the matching rows of B to each).
struct LoraTarget {
  std::string tensor;
  WeightMatrix* w = nullptr;
  int64_t first_row = 0;
  int64_t tensor_rows = 0;  // n_out of the whole tensor
};

// On-the-fly term of one matrix: y += B·(A·x), A = rank rows of n_in, B = n_out rows of rank, the
// adapters concatenated along the rank and their scales folded into B.
struct LoraDelta {
  std::vector<float> a, b;
  WeightMatrix wa, wb;
};

// The adapters applied to one model: merged copies and on-the-fly terms, owned here.
class LoraWeights {
 public:
  // Applies every adapter to the targets (see the file comment for which way); base names the
  // model's file and arch its architecture, for the checks. Throws edgevlm::Error naming the
  // adapter file and tensor on an architecture mismatch, a target the base file lacks or the
  // decoder does not multiply (embeddings, norms, biases), or shapes that do not match.
  // pool: used for merging (may be null: one thread).
  LoraWeights(const std::vector<const LoraAdapter*>& adapters, const std::vector<LoraTarget>& targets,
              const GGUFFile& base, const std::string& arch, LoraMode mode, ThreadPool* pool);
  LoraWeights(const LoraWeights&) = delete;
  LoraWeights& operator=(const LoraWeights&) = delete;

  // The on-the-fly term of w (a matrix of the model, by address), or null.
  const LoraDelta* delta(const WeightMatrix& w) const {
    if (deltas_.empty()) return nullptr;
    auto it = deltas_.find(&w);
    return it == deltas_.end() ? nullptr : &it->second;
  }
  int n_merged() const { return n_merged_; }
  int n_on_the_fly() const { return int(deltas_.size()); }

 private:
  std::vector<std::vector<float>> merged_;  // W' of each merged matrix
  std::unordered_map<const WeightMatrix*, LoraDelta> deltas_;
  int n_merged_ = 0;
};

// y[r·n_out + o] += (B·(A·x_r))[o] for r < n_rows (the on-the-fly term of a product y = W·x).
void lora_delta_add(const LoraDelta& d, const float* x, int64_t n_rows, float* y, ThreadPool& pool);

// y = W·x with out's epilogue (ops/matmul.h), plus W's on-the-fly term when lora (may be null) has
// one for W. The term adds onto rows of n_out floats: out.ldy must then be 0 or n_out. The one
// product of the decoder, the ViT and the projector whose matrices an adapter may target.
void matmul_lora(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                 const LoraWeights* lora, const MatmulOut& out = {});

}  // namespace edgevlm
