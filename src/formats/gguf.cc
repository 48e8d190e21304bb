#include "formats/gguf.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"

namespace edgevlm {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;
// Memory the parsed metadata may take: a fixed allowance plus a multiple of the bytes it occupies
// in the file. Real files stay far below (a 150k-token vocabulary costs about 2.3x its bytes);
// small elements that each become a heap object (empty strings, empty nested arrays) would
// otherwise turn a 100 MB file into gigabytes before anything else is checked.
constexpr size_t kMetadataMemoryConstant = size_t(32) << 20;
constexpr size_t kMetadataMemoryPerFileByte = 4;

size_t scalar_size(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
    case GGUFType::UINT16: case GGUFType::INT16: return 2;
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
    case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GGUFType::FLOAT64); }

// Decodes one packed scalar of type t into a value.
GGUFValue scalar_from_bytes(GGUFType t, const uint8_t* p) {
  GGUFValue v;
  v.type = t;
  switch (t) {
    case GGUFType::UINT8: v.u = p[0]; v.i = p[0]; break;
    case GGUFType::INT8: v.i = int8_t(p[0]); v.u = uint64_t(v.i); break;
    case GGUFType::BOOL: v.b = p[0] != 0; v.u = v.b; v.i = v.b; break;
    case GGUFType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); v.u = x; v.i = x; break; }
    case GGUFType::INT16: { int16_t x; std::memcpy(&x, p, 2); v.i = x; v.u = uint64_t(x); break; }
    case GGUFType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); v.u = x; v.i = x; break; }
    case GGUFType::INT32: { int32_t x; std::memcpy(&x, p, 4); v.i = x; v.u = uint64_t(x); break; }
    case GGUFType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); v.u = x; v.i = int64_t(x); break; }
    case GGUFType::INT64: { int64_t x; std::memcpy(&x, p, 8); v.i = x; v.u = uint64_t(x); break; }
    case GGUFType::FLOAT32: { float x; std::memcpy(&x, p, 4); v.f = x; break; }
    case GGUFType::FLOAT64: { double x; std::memcpy(&x, p, 8); v.f = x; break; }
    default: fail("internal: %s is not a scalar GGUF type", gguf_type_name(t));
  }
  return v;
}

void scalar_to_bytes(const GGUFValue& v, std::vector<uint8_t>& out) {
  uint8_t buf[8];
  switch (v.type) {
    case GGUFType::UINT8: buf[0] = uint8_t(v.u); break;
    case GGUFType::INT8: buf[0] = uint8_t(int8_t(v.i)); break;
    case GGUFType::BOOL: buf[0] = v.b ? 1 : 0; break;
    case GGUFType::UINT16: { uint16_t x = uint16_t(v.u); std::memcpy(buf, &x, 2); break; }
    case GGUFType::INT16: { int16_t x = int16_t(v.i); std::memcpy(buf, &x, 2); break; }
    case GGUFType::UINT32: { uint32_t x = uint32_t(v.u); std::memcpy(buf, &x, 4); break; }
    case GGUFType::INT32: { int32_t x = int32_t(v.i); std::memcpy(buf, &x, 4); break; }
    case GGUFType::UINT64: std::memcpy(buf, &v.u, 8); break;
    case GGUFType::INT64: std::memcpy(buf, &v.i, 8); break;
    case GGUFType::FLOAT32: { float x = float(v.f); std::memcpy(buf, &x, 4); break; }
    case GGUFType::FLOAT64: std::memcpy(buf, &v.f, 8); break;
    default: fail("internal: %s is not a scalar GGUF type", gguf_type_name(v.type));
  }
  out.insert(out.end(), buf, buf + scalar_size(v.type));
}

// Bounds-checked cursor over the file image. Every read names the file and the byte offset
// on failure, so a truncated or corrupt file says where it broke.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& name) : base_(base), size_(size), name_(name) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void error(const std::string& what) const {
    fail("%s: corrupt GGUF file: %s (at byte %zu of %zu)", name_.c_str(), what.c_str(), pos_, size_);
  }
  const uint8_t* take(size_t n, const char* what) {
    if (n > remaining()) error(std::string("truncated while reading ") + what);
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T read(const char* what) {
    T x;
    std::memcpy(&x, take(sizeof(T), what), sizeof(T));
    return x;
  }
  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining()) error(std::string(what) + " has length " + std::to_string(len) + " beyond the end of the file");
    const uint8_t* p = take(size_t(len), what);
    charge(sizeof(std::string) + (len > 15 ? size_t(len) + 1 : 0));
    return std::string(reinterpret_cast<const char*>(p), size_t(len));
  }

  // Counts memory the parsed metadata takes; refuses once it passes the budget for the bytes read.
  void charge(size_t bytes) {
    charged_ += bytes;
    const size_t budget = kMetadataMemoryConstant + kMetadataMemoryPerFileByte * pos_;
    if (charged_ > budget) {
      fail("%s: refusing the file: its metadata would take more than %zu MiB of memory for %zu bytes of file "
           "(at most %zux the bytes plus %zu MiB; at byte %zu)",
           name_.c_str(), budget >> 20, pos_, kMetadataMemoryPerFileByte, kMetadataMemoryConstant >> 20, pos_);
    }
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  size_t charged_ = 0;
  const std::string& name_;
};

GGUFValue read_value(Cursor& c, GGUFType type, int depth, const std::string& key);

GGUFValue read_array(Cursor& c, int depth, const std::string& key) {
  if (depth >= kMaxArrayDepth) c.error("array nesting deeper than " + std::to_string(kMaxArrayDepth) + " in key '" + key + "'");
  const uint32_t et = c.read<uint32_t>("array element type");
  if (!valid_type(et)) c.error("unknown array element type " + std::to_string(et) + " in key '" + key + "'");
  const GGUFType elem = static_cast<GGUFType>(et);
  const uint64_t count = c.read<uint64_t>("array length");
  // Each element occupies at least this many bytes on disk: a count beyond what the rest of the
  // file can hold is rejected before anything is allocated.
  const size_t min_elem = elem == GGUFType::STRING ? 8 : elem == GGUFType::ARRAY ? 12 : scalar_size(elem);
  if (count > c.remaining() / min_elem) {
    c.error("array '" + key + "' claims " + std::to_string(count) + " elements, more than the file holds");
  }
  c.charge(sizeof(GGUFArray) + 32);  // the array and its shared_ptr control block
  auto arr = std::make_shared<GGUFArray>();
  arr->elem_type = elem;
  if (elem == GGUFType::STRING) {
    c.charge(size_t(count) * sizeof(std::string));
    arr->strings.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) arr->strings.push_back(c.read_string("array string"));
  } else if (elem == GGUFType::ARRAY) {
    c.charge(size_t(count) * sizeof(GGUFValue));
    arr->arrays.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) arr->arrays.push_back(read_array(c, depth + 1, key));
  } else {
    const size_t n = size_t(count) * min_elem;
    c.charge(n);
    const uint8_t* p = c.take(n, "array data");
    arr->raw.assign(p, p + n);
  }
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.arr = std::move(arr);
  return v;
}

GGUFValue read_value(Cursor& c, GGUFType type, int depth, const std::string& key) {
  if (type == GGUFType::STRING) return GGUFValue::from_string(c.read_string("string value"));
  if (type == GGUFType::ARRAY) return read_array(c, depth, key);
  return scalar_from_bytes(type, c.take(scalar_size(type), "scalar value"));
}

void write_value(const GGUFValue& v, std::vector<uint8_t>& out);

void put_u32(std::vector<uint8_t>& out, uint32_t x) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&x);
  out.insert(out.end(), p, p + 4);
}
void put_u64(std::vector<uint8_t>& out, uint64_t x) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&x);
  out.insert(out.end(), p, p + 8);
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put_u64(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void write_array_body(const GGUFArray& a, std::vector<uint8_t>& out) {
  put_u32(out, static_cast<uint32_t>(a.elem_type));
  put_u64(out, a.size());
  if (a.elem_type == GGUFType::STRING) {
    for (const auto& s : a.strings) put_string(out, s);
  } else if (a.elem_type == GGUFType::ARRAY) {
    for (const auto& e : a.arrays) write_array_body(*e.arr, out);
  } else {
    out.insert(out.end(), a.raw.begin(), a.raw.end());
  }
}

void write_value(const GGUFValue& v, std::vector<uint8_t>& out) {
  if (v.type == GGUFType::STRING) {
    put_string(out, v.s);
  } else if (v.type == GGUFType::ARRAY) {
    EV_CHECK(v.arr != nullptr, "GGUF array value without contents");
    write_array_body(*v.arr, out);
  } else {
    scalar_to_bytes(v, out);
  }
}

}  // namespace

const char* gguf_type_name(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: return "uint8";
    case GGUFType::INT8: return "int8";
    case GGUFType::UINT16: return "uint16";
    case GGUFType::INT16: return "int16";
    case GGUFType::UINT32: return "uint32";
    case GGUFType::INT32: return "int32";
    case GGUFType::FLOAT32: return "float32";
    case GGUFType::BOOL: return "bool";
    case GGUFType::STRING: return "string";
    case GGUFType::ARRAY: return "array";
    case GGUFType::UINT64: return "uint64";
    case GGUFType::INT64: return "int64";
    case GGUFType::FLOAT64: return "float64";
  }
  return "unknown";
}

// ---- GGUFValue ----

GGUFValue GGUFValue::from_u32(uint32_t x) { GGUFValue v; v.type = GGUFType::UINT32; v.u = x; v.i = x; return v; }
GGUFValue GGUFValue::from_i32(int32_t x) { GGUFValue v; v.type = GGUFType::INT32; v.i = x; v.u = uint64_t(x); return v; }
GGUFValue GGUFValue::from_u64(uint64_t x) { GGUFValue v; v.type = GGUFType::UINT64; v.u = x; v.i = int64_t(x); return v; }
GGUFValue GGUFValue::from_f32(float x) { GGUFValue v; v.type = GGUFType::FLOAT32; v.f = x; return v; }
GGUFValue GGUFValue::from_bool(bool x) { GGUFValue v; v.type = GGUFType::BOOL; v.b = x; v.u = x; v.i = x; return v; }
GGUFValue GGUFValue::from_string(std::string x) { GGUFValue v; v.type = GGUFType::STRING; v.s = std::move(x); return v; }

GGUFValue GGUFValue::from_array(GGUFType elem_type, std::vector<GGUFValue> items) {
  auto arr = std::make_shared<GGUFArray>();
  arr->elem_type = elem_type;
  for (auto& it : items) {
    EV_CHECK(it.type == elem_type, "GGUF array of %s given an element of type %s", gguf_type_name(elem_type),
             gguf_type_name(it.type));
    if (elem_type == GGUFType::STRING) arr->strings.push_back(std::move(it.s));
    else if (elem_type == GGUFType::ARRAY) arr->arrays.push_back(std::move(it));
    else scalar_to_bytes(it, arr->raw);
  }
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.arr = std::move(arr);
  return v;
}

GGUFValue GGUFValue::from_strings(const std::vector<std::string>& xs) {
  auto arr = std::make_shared<GGUFArray>();
  arr->elem_type = GGUFType::STRING;
  arr->strings = xs;
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.arr = std::move(arr);
  return v;
}

namespace {
// An array of packed scalars, copied as raw little-endian bytes.
template <typename T>
GGUFValue packed_array(GGUFType elem_type, const std::vector<T>& xs) {
  auto arr = std::make_shared<GGUFArray>();
  arr->elem_type = elem_type;
  arr->raw.resize(xs.size() * sizeof(T));
  if (!xs.empty()) std::memcpy(arr->raw.data(), xs.data(), arr->raw.size());
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.arr = std::move(arr);
  return v;
}
}  // namespace

GGUFValue GGUFValue::from_f32s(const std::vector<float>& xs) { return packed_array(GGUFType::FLOAT32, xs); }
GGUFValue GGUFValue::from_i32s(const std::vector<int32_t>& xs) { return packed_array(GGUFType::INT32, xs); }

namespace {
bool is_integer_type(GGUFType type) {
  switch (type) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
      return true;
    default:
      return false;
  }
}
}  // namespace

bool GGUFValue::is_integer() const { return is_integer_type(type); }

bool GGUFValue::is_number() const {
  return is_integer() || type == GGUFType::FLOAT32 || type == GGUFType::FLOAT64;
}

int64_t GGUFValue::as_int() const {
  EV_CHECK(is_integer() || type == GGUFType::BOOL, "expected an integer, found %s", gguf_type_name(type));
  EV_CHECK(type != GGUFType::UINT64 || u <= uint64_t(std::numeric_limits<int64_t>::max()),
           "integer %llu does not fit in int64", static_cast<unsigned long long>(u));
  return i;
}

double GGUFValue::as_double() const {
  EV_CHECK(is_number(), "expected a number, found %s", gguf_type_name(type));
  if (type == GGUFType::FLOAT32 || type == GGUFType::FLOAT64) return f;
  if (type == GGUFType::UINT64) return double(u);
  return double(i);
}

size_t GGUFArray::size() const {
  if (elem_type == GGUFType::STRING) return strings.size();
  if (elem_type == GGUFType::ARRAY) return arrays.size();
  const size_t s = scalar_size(elem_type);
  return s ? raw.size() / s : 0;
}

GGUFValue GGUFArray::at(size_t i) const {
  EV_CHECK(i < size(), "GGUF array index %zu out of range (size %zu)", i, size());
  if (elem_type == GGUFType::STRING) return GGUFValue::from_string(strings[i]);
  if (elem_type == GGUFType::ARRAY) return arrays[i];
  return scalar_from_bytes(elem_type, raw.data() + i * scalar_size(elem_type));
}

// ---- GGUFTensorInfo ----

int64_t GGUFTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return ne.empty() ? 0 : n;
}

// ---- GGUFFile ----

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("%s: cannot stat: %s", path.c_str(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("%s: not a regular file", path.c_str());
  }
  std::unique_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail("%s: cannot map: %s", path.c_str(), std::strerror(e));
    }
    f->base_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);
  f->parse();
  return f;
}

std::unique_ptr<GGUFFile> GGUFFile::from_memory(const void* data, size_t size, const std::string& name) {
  std::unique_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = name;
  f->owned_.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  f->base_ = f->owned_.data();
  f->size_ = size;
  f->parse();
  return f;
}

GGUFFile::~GGUFFile() {
  if (mapped_) munmap(const_cast<uint8_t*>(base_), size_);
}

void GGUFFile::parse() {
  Cursor c(base_, size_, path_);
  if (size_ < 4) c.error("file is " + std::to_string(size_) + " bytes, too short for a GGUF header");
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) c.error("bad magic (not a GGUF file)");
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) c.error("unsupported GGUF version " + std::to_string(version_));
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Smallest possible key-value: 8-byte key length + 4-byte type + 1 byte of value.
  if (n_kv > c.remaining() / 13) c.error("metadata count " + std::to_string(n_kv) + " is more than the file can hold");
  // Smallest possible tensor info: 8 (name length) + 4 (dims) + 4 (type) + 8 (offset).
  if (n_tensors > c.remaining() / 24) c.error("tensor count " + std::to_string(n_tensors) + " is more than the file can hold");

  c.charge(size_t(n_kv) * (sizeof(std::pair<std::string, GGUFValue>) + 64));  // entries and the key index
  kv_.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_type(t)) c.error("key '" + key + "' has unknown value type " + std::to_string(t));
    GGUFValue v = read_value(c, static_cast<GGUFType>(t), 0, key);
    if (kv_index_.count(key)) c.error("duplicate metadata key '" + key + "'");
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GGUFValue* a = find("general.alignment")) {
    if (!a->is_integer()) c.error("general.alignment is not an integer");
    const uint64_t al = a->u;
    if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20)) {
      c.error("general.alignment " + std::to_string(al) + " is not a power of two up to 1 MiB");
    }
    alignment_ = size_t(al);
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t ti = 0; ti < n_tensors; ++ti) {
    GGUFTensorInfo info;
    info.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) {
      c.error("tensor '" + info.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    }
    int64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = c.read<int64_t>("tensor dimension");
      if (ne < 0) c.error("tensor '" + info.name + "' has a negative dimension");
      if (ne != 0 && n_el > std::numeric_limits<int64_t>::max() / ne) {
        c.error("tensor '" + info.name + "' has an element count that overflows");
      }
      n_el *= ne;
      info.ne.push_back(ne);
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    info.type = static_cast<GGMLType>(type);
    const size_t be = type_block_elems(info.type);
    // A type whose block size we do not know leaves the file's sizes unknowable: say which type
    // (a newer or rarer GGML type, not a corrupt file) and stop.
    if (be == 0) {
      fail("%s: unsupported tensor type %s (id %u) in tensor '%s'", path_.c_str(), type_name(info.type).c_str(), type,
           info.name.c_str());
    }
    if (info.ne[0] % int64_t(be) != 0) {
      c.error("tensor '" + info.name + "' row length " + std::to_string(info.ne[0]) + " is not a multiple of the " +
              type_name(info.type) + " block size");
    }
    const uint64_t blocks = uint64_t(n_el) / be;
    if (blocks > std::numeric_limits<uint64_t>::max() / type_block_bytes(info.type)) {
      c.error("tensor '" + info.name + "' byte size overflows");
    }
    info.nbytes = size_t(blocks * type_block_bytes(info.type));
    info.offset = c.read<uint64_t>("tensor offset");
    if (info.offset % alignment_ != 0) {
      c.error("tensor '" + info.name + "' offset " + std::to_string(info.offset) + " is not aligned to " +
              std::to_string(alignment_));
    }
    if (tensor_index_.count(info.name)) c.error("duplicate tensor name '" + info.name + "'");
    tensor_index_[info.name] = tensors_.size();
    tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  size_t data_start = c.pos();
  data_start = (data_start + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_start > size_) {
    fail("%s: corrupt GGUF file: tensor data section starts at byte %zu, past the end (%zu bytes)", path_.c_str(),
         data_start, size_);
  }
  const size_t data_size = data_start <= size_ ? size_ - data_start : 0;
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail("%s: corrupt GGUF file: tensor '%s' (%zu bytes at data offset %llu) runs past the end of the file",
           path_.c_str(), t.name.c_str(), t.nbytes, static_cast<unsigned long long>(t.offset));
    }
    t.data = base_ + data_start + t.offset;
  }
  // No two tensors may share bytes (llama.cpp's loader requires the same). Besides being corrupt,
  // such a file is a memory bomb: every matrix gets its own prepared copy at load, so a small file
  // of many tensors over the same bytes would cost many times its size.
  std::vector<const GGUFTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const auto& t : tensors_)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GGUFTensorInfo* a, const GGUFTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GGUFTensorInfo& a = *by_offset[i - 1];
    const GGUFTensorInfo& b = *by_offset[i];
    if (b.offset < a.offset + a.nbytes) {
      fail("%s: corrupt GGUF file: tensors '%s' (data bytes %llu to %llu) and '%s' (from %llu) overlap",
           path_.c_str(), a.name.c_str(), static_cast<unsigned long long>(a.offset),
           static_cast<unsigned long long>(a.offset + a.nbytes), b.name.c_str(),
           static_cast<unsigned long long>(b.offset));
    }
  }
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const char* want, GGUFType got) {
  fail("%s: metadata key '%s' should be %s but is %s", path.c_str(), key.c_str(), want, gguf_type_name(got));
}
}  // namespace

std::string GGUFFile::get_string(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (v->type != GGUFType::STRING) wrong_type(path_, key, "a string", v->type);
  return v->s;
}

std::string GGUFFile::get_string_or(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

int64_t GGUFFile::get_int(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (!v->is_integer()) wrong_type(path_, key, "an integer", v->type);
  if (v->type == GGUFType::UINT64 && v->u > uint64_t(std::numeric_limits<int64_t>::max())) {
    fail("%s: metadata key '%s' value %llu is too large", path_.c_str(), key.c_str(),
         static_cast<unsigned long long>(v->u));
  }
  return v->i;
}

int64_t GGUFFile::get_int_or(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GGUFFile::get_float(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (!v->is_number()) wrong_type(path_, key, "a number", v->type);
  return v->as_double();
}

double GGUFFile::get_float_or(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GGUFFile::get_bool_or(const std::string& key, bool fallback) const {
  const GGUFValue* v = find(key);
  if (!v) return fallback;
  if (v->type != GGUFType::BOOL) wrong_type(path_, key, "a bool", v->type);
  return v->b;
}

std::vector<std::string> GGUFFile::get_strings(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (v->type != GGUFType::ARRAY || v->arr->elem_type != GGUFType::STRING) {
    wrong_type(path_, key, "an array of strings", v->type == GGUFType::ARRAY ? v->arr->elem_type : v->type);
  }
  return v->arr->strings;
}

std::vector<float> GGUFFile::get_floats(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (v->type != GGUFType::ARRAY || !scalar_size(v->arr->elem_type) || v->arr->elem_type == GGUFType::BOOL) {
    wrong_type(path_, key, "an array of numbers", v->type == GGUFType::ARRAY ? v->arr->elem_type : v->type);
  }
  std::vector<float> out(v->arr->size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = float(v->arr->at(i).as_double());
  return out;
}

std::vector<int64_t> GGUFFile::get_ints(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("%s: missing metadata key '%s'", path_.c_str(), key.c_str());
  if (v->type != GGUFType::ARRAY || !is_integer_type(v->arr->elem_type)) {
    wrong_type(path_, key, "an array of integers", v->type == GGUFType::ARRAY ? v->arr->elem_type : v->type);
  }
  std::vector<int64_t> out(v->arr->size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = v->arr->at(i).i;
  return out;
}

const GGUFTensorInfo* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GGUFTensorInfo& GGUFFile::tensor(const std::string& name) const {
  const GGUFTensorInfo* t = find_tensor(name);
  if (!t) fail("%s: missing tensor '%s'", path_.c_str(), name.c_str());
  return *t;
}

// ---- GGUFWriter ----

void GGUFWriter::set(const std::string& key, GGUFValue v) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GGUFWriter::set_alignment(uint32_t a) {
  EV_CHECK(a != 0 && (a & (a - 1)) == 0, "GGUF alignment %u is not a power of two", a);
  alignment_ = a;
  set_u32("general.alignment", a);
}

void GGUFWriter::add_tensor(const std::string& name, GGMLType type, const std::vector<int64_t>& ne,
                            const void* data, size_t nbytes) {
  EV_CHECK(!ne.empty() && ne.size() <= size_t(kMaxDims), "tensor '%s': 1 to 4 dimensions, got %zu", name.c_str(),
           ne.size());
  int64_t n = 1;
  for (int64_t d : ne) {
    EV_CHECK(d >= 0, "tensor '%s': negative dimension", name.c_str());
    n *= d;
  }
  const size_t expect = row_bytes(type, ne[0]) * size_t(ne[0] ? n / ne[0] : 0);
  EV_CHECK(nbytes == expect, "tensor '%s': %zu bytes given, %zu expected for %s", name.c_str(), nbytes, expect,
           type_name(type).c_str());
  for (const auto& t : tensors_) EV_CHECK(t.name != name, "duplicate tensor name '%s'", name.c_str());
  Pending p{name, type, ne, {}};
  p.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
  tensors_.push_back(std::move(p));
}

void GGUFWriter::add_tensor_f32(const std::string& name, GGMLType type, const std::vector<int64_t>& ne,
                                const float* values) {
  EV_CHECK(!ne.empty(), "tensor '%s': no dimensions", name.c_str());
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  const int64_t rows = ne[0] ? n / ne[0] : 0;
  const size_t rb = row_bytes(type, ne[0]);
  std::vector<uint8_t> bytes(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, values + r * ne[0], bytes.data() + size_t(r) * rb, ne[0]);
  add_tensor(name, type, ne, bytes.data(), bytes.size());
}

// Header, metadata and tensor infos, padded to the alignment: everything before the tensor data.
std::vector<uint8_t> GGUFWriter::header_bytes() const {
  std::vector<uint8_t> out;
  put_u32(out, kMagic);
  put_u32(out, 3);
  put_u64(out, tensors_.size());
  put_u64(out, kv_.size());
  for (const auto& [key, v] : kv_) {
    put_string(out, key);
    put_u32(out, static_cast<uint32_t>(v.type));
    write_value(v, out);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put_u32(out, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put_u64(out, uint64_t(d));
    put_u32(out, static_cast<uint32_t>(t.type));
    put_u64(out, offset);
    offset += padded(t.bytes.size());
  }
  out.resize(padded(out.size()), 0);
  return out;
}

std::vector<uint8_t> GGUFWriter::serialize() const {
  std::vector<uint8_t> out = header_bytes();
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
    out.resize(padded(out.size()), 0);
  }
  return out;
}

// Streams to a temporary file and renames it, so a failed write never leaves a half file behind.
void GGUFWriter::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("%s: cannot open for writing", tmp.c_str());
    const std::vector<uint8_t> header = header_bytes();
    f.write(reinterpret_cast<const char*>(header.data()), std::streamsize(header.size()));
    const std::vector<char> zeros(alignment_, 0);
    for (const auto& t : tensors_) {
      f.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
      f.write(zeros.data(), std::streamsize(padded(t.bytes.size()) - t.bytes.size()));
    }
    if (!f) fail("%s: write failed (disk full?)", tmp.c_str());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    fail("%s: cannot rename into place: %s", path.c_str(), std::strerror(errno));
  }
}

}  // namespace edgevlm
