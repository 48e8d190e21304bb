// GGUF v3: reader (memory-mapped, hardened against corrupt and hostile files) and writer.
// Spec: magic "GGUF", u32 version, u64 tensor count, u64 KV count, KVs, tensor infos, padding to
// general.alignment (default 32), tensor data. All integers little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "formats/quant.h"

namespace edgevlm {

enum class GGUFType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_type_name(GGUFType t);

struct GGUFArray;

// One metadata value. Integers are held widened (signed in i, unsigned in u), floats as double;
// `type` keeps the on-disk type so that a file can be rewritten exactly.
struct GGUFValue {
  GGUFType type = GGUFType::UINT32;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::shared_ptr<GGUFArray> arr;

  static GGUFValue from_u32(uint32_t v);
  static GGUFValue from_i32(int32_t v);
  static GGUFValue from_u64(uint64_t v);
  static GGUFValue from_f32(float v);
  static GGUFValue from_bool(bool v);
  static GGUFValue from_string(std::string v);
  static GGUFValue from_array(GGUFType elem_type, std::vector<GGUFValue> items);
  static GGUFValue from_strings(const std::vector<std::string>& v);
  static GGUFValue from_f32s(const std::vector<float>& v);
  static GGUFValue from_i32s(const std::vector<int32_t>& v);

  bool is_integer() const;
  bool is_number() const;
  // Numeric value as the requested kind; throws edgevlm::Error when the type does not fit.
  int64_t as_int() const;
  double as_double() const;
};

// Arrays keep numbers packed as on disk (a 150k-entry token_type array is 600 KB, not 150k values),
// strings as strings and nested arrays as values. at(i) materializes one element.
struct GGUFArray {
  GGUFType elem_type = GGUFType::UINT8;
  std::vector<uint8_t> raw;          // numeric and bool elements, little-endian
  std::vector<std::string> strings;  // STRING elements
  std::vector<GGUFValue> arrays;     // ARRAY elements
  size_t size() const;
  GGUFValue at(size_t i) const;
};

struct GGUFTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // dimensions, fastest-varying first (ne[0] = row length)
  GGMLType type = GGMLType::F32;
  uint64_t offset = 0;       // relative to the data section
  const uint8_t* data = nullptr;  // into the mapping (reader) or the caller's buffer (writer)
  size_t nbytes = 0;

  int64_t n_elements() const;
  int64_t rows() const { return ne.empty() ? 0 : n_elements() / ne[0]; }
};

class GGUFFile {
 public:
  // Maps the file and parses it. Throws edgevlm::Error naming the file and the fault on any
  // corruption; never reads outside the mapping, never allocates more than the file justifies.
  static std::unique_ptr<GGUFFile> open(const std::string& path);
  // Parses an in-memory image (used by fuzzing and tests); `name` appears in errors.
  static std::unique_ptr<GGUFFile> from_memory(const void* data, size_t size, const std::string& name);
  ~GGUFFile();
  GGUFFile(const GGUFFile&) = delete;
  GGUFFile& operator=(const GGUFFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GGUFValue>>& metadata() const { return kv_; }
  const GGUFValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

  // Typed getters: the *_or forms return the fallback when the key is absent; all throw an error
  // naming the key when it is present with the wrong type.
  std::string get_string(const std::string& key) const;
  std::string get_string_or(const std::string& key, const std::string& fallback) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float_or(const std::string& key, double fallback) const;
  bool get_bool_or(const std::string& key, bool fallback) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<float> get_floats(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

  const std::vector<GGUFTensorInfo>& tensors() const { return tensors_; }
  const GGUFTensorInfo* find_tensor(const std::string& name) const;
  // Throws an error naming the file and tensor when it is missing.
  const GGUFTensorInfo& tensor(const std::string& name) const;

 private:
  GGUFFile() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint8_t> owned_;  // from_memory copies here
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GGUFTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file. Tensor data is copied into the writer, so callers may free theirs.
class GGUFWriter {
 public:
  void set(const std::string& key, GGUFValue v);  // replaces an existing key, keeps its position
  void set_string(const std::string& key, const std::string& v) { set(key, GGUFValue::from_string(v)); }
  void set_u32(const std::string& key, uint32_t v) { set(key, GGUFValue::from_u32(v)); }
  void set_i32(const std::string& key, int32_t v) { set(key, GGUFValue::from_i32(v)); }
  void set_f32(const std::string& key, float v) { set(key, GGUFValue::from_f32(v)); }
  void set_bool(const std::string& key, bool v) { set(key, GGUFValue::from_bool(v)); }
  void set_alignment(uint32_t a);

  // `data` holds the tensor in its on-disk layout: row_bytes(type, ne[0]) × rows bytes.
  void add_tensor(const std::string& name, GGMLType type, const std::vector<int64_t>& ne,
                  const void* data, size_t nbytes);
  // Convenience: converts F32 values to `type` (F32, F16, BF16, Q8_0, Q4_0) and adds.
  void add_tensor_f32(const std::string& name, GGMLType type, const std::vector<int64_t>& ne,
                      const float* values);

  void write(const std::string& path) const;       // throws on I/O failure
  std::vector<uint8_t> serialize() const;           // the whole file image in memory

 private:
  std::vector<uint8_t> header_bytes() const;
  size_t padded(size_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  struct Pending {
    std::string name;
    GGMLType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<Pending> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace edgevlm
