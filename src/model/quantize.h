// Mixed-precision quantization of a GGUF file (either file of a model pair), the paper's
// deployment precisions as the `bluelm` scheme:
//   vision file (clip): ViT and projector matrices Q8_0;
//   language model (llama/qwen2): matrices Q4_0, token embeddings and output Q8_0;
//   both: norms, biases, position embeddings and every 1-D tensor F32.
// Uniform schemes q8_0, q4_0, f16, f32 apply one type to every matrix. A matrix whose rows are
// not a multiple of 32 (the Q8_0/Q4_0 block) stays F32 or F16 (e.g. a 14×14 patch embedding).
// The K-quant schemes of llama-quantize (language models; its llama_tensor_get_type rules for
// dense decoders, no importance matrix), q4_k_m / q5_k_m / q6_k / q3_k_m / iq4_xs: every matrix
// Q4_K / Q5_K / Q6_K / Q3_K / IQ4_XS; output.weight (token_embd.weight when tied) Q6_K; under
// q4_k_m and q5_k_m, attn_v and ffn_down Q6_K in the layers use_more_bits picks (the first and last
// eighth, every third between), and a fused attn_qkv Q5_K / Q6_K; under q3_k_m, attn_v Q5_K in
// layers 0-1 and Q4_K after, ffn_down Q5_K in the first sixteenth and Q4_K after, attn_output and
// attn_qkv Q4_K; under iq4_xs, ffn_down Q5_K in the first eighth and attn_v Q5_K with 4 or more
// heads per KV head. Rows not a multiple of 256 fall back as llama-quantize does: Q3_K → Q4_0,
// Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0 (output.weight: Q8_0), IQ4_XS → IQ4_NL, F16 when not a
// multiple of 32 either.
// Tensors llama-quantize leaves alone (1-D, norms, position embeddings) keep their type.
// An input already quantized (any block type) is requantized only when allowed
// (--allow-requantize): the result is worse than quantizing the float original.
// All metadata is copied, general.file_type is set. Output is streamed tensor by tensor, so memory
// stays at one tensor's worth whatever the model size.
//
// Also home of GGUFStreamWriter, the streaming GGUF writer used here and by the bluelm-v-3b
// generator (formats/gguf.h's GGUFWriter keeps every tensor in memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "formats/quant.h"

namespace edgevlm {

// Writes a GGUF v3 file in one pass: metadata and tensor infos first, then each tensor's data in
// declaration order. Writes to PATH.tmp and renames on finish(), so a failure never leaves a
// half-written file under the final name.
class GGUFStreamWriter {
 public:
  GGUFStreamWriter() = default;
  ~GGUFStreamWriter();  // removes the temporary file unless finish() succeeded
  GGUFStreamWriter(const GGUFStreamWriter&) = delete;
  GGUFStreamWriter& operator=(const GGUFStreamWriter&) = delete;

  void set(const std::string& key, GGUFValue v);  // replaces an existing key in place
  void set_alignment(uint32_t a);                 // power of two; also sets general.alignment
  uint32_t alignment() const { return alignment_; }
  // Declares the next tensor (its bytes: row_bytes(type, ne[0]) × rows).
  void add_tensor_info(const std::string& name, GGMLType type, const std::vector<int64_t>& ne);
  size_t tensor_bytes(size_t index) const { return tensors_.at(index).nbytes; }
  size_t n_tensors() const { return tensors_.size(); }
  // Total file size once written.
  uint64_t file_bytes() const;

  void begin(const std::string& path);  // writes the header
  // Appends bytes of the current tensor; a tensor may be written in several calls. Throws when
  // more bytes are given than the declared tensors hold.
  void write_data(const void* data, size_t n);
  void finish();  // checks every tensor is complete, flushes, renames into place

 private:
  struct Info {
    std::string name;
    GGMLType type;
    std::vector<int64_t> ne;
    size_t nbytes;
  };
  std::vector<uint8_t> header() const;
  uint64_t padded(uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::vector<Info> tensors_;
  uint32_t alignment_ = 32;
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  size_t cur_ = 0;       // tensor being written
  size_t cur_done_ = 0;  // its bytes written so far
  bool finished_ = false;
};

enum class QuantScheme { BlueLM, Q8_0, Q4_0, F16, F32, Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, IQ4_XS };
const char* quant_scheme_name(QuantScheme s);  // "bluelm", "q8_0", ...
// Throws edgevlm::Error naming the value and the choices.
QuantScheme parse_quant_scheme(const std::string& s);

enum class ModelFileKind { Llm, Mmproj };
// From general.architecture: llama/qwen2 → Llm, clip → Mmproj; anything else is an error naming it.
ModelFileKind detect_model_file_kind(const GGUFFile& f);

// What the K-quant schemes' per-tensor choices depend on besides the tensor.
struct QuantModelInfo {
  int n_layer = 0;     // the decoder's blocks
  bool tied = false;   // no output.weight: token_embd.weight is the output projection
  int n_gqa = 1;       // attention heads per KV head
};
// The type a tensor gets under a scheme (see the top of this file).
GGMLType quant_target_type(QuantScheme s, ModelFileKind kind, const GGUFTensorInfo& t,
                           const QuantModelInfo& m = {});
// llama.cpp's general.file_type ("mostly") value of a scheme.
uint32_t quant_file_type(QuantScheme s, ModelFileKind kind);

struct QuantizeProgress {
  size_t index = 0, count = 0;  // tensor index (0-based) of count
  const GGUFTensorInfo* tensor = nullptr;
  GGMLType to = GGMLType::F32;
  uint64_t bytes_done = 0, bytes_total = 0;  // output data bytes
};

struct QuantizeReport {
  ModelFileKind kind = ModelFileKind::Llm;
  uint64_t in_bytes = 0, out_bytes = 0;
  std::vector<std::pair<GGMLType, int>> type_counts;  // output tensors per type
};

// Reads `in`, writes `out` (must differ). progress (may be empty) is called before each tensor.
// Rows are converted on n_threads threads (0: all hardware threads); the output does not depend
// on it. Throws edgevlm::Error naming the file, tensor or value at fault.
// allow_requantize: convert tensors already in a block type (otherwise refused, naming one).
QuantizeReport quantize_gguf(const std::string& in, const std::string& out, QuantScheme scheme,
                             const std::function<void(const QuantizeProgress&)>& progress = {},
                             int n_threads = 0, bool allow_requantize = false);

}  // namespace edgevlm
