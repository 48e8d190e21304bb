// The hostile-file suite: one well-formed but hostile file per class, each given to the `edgevlm`
// binary as a user would, in a child process whose peak RSS (wait4's ru_maxrss, the child's own:
// see Launcher) is asserted below
// a stated bound. Each must end in an error that names what is wrong, within that memory.
//   bound = kRssPerFileByte × (the files' bytes) + kRssConstant
// (the constant covers the binary, its libraries and a small model's working memory).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/quant.h"
#include "model/random_model.h"
#include "vision/mmproj.h"

namespace edgevlm {
namespace {

namespace fs = std::filesystem;

constexpr double kRssPerFileByte = 3.0;
constexpr double kRssConstantMiB = 96.0;

std::string binary_path() {
  if (const char* b = std::getenv("EDGEVLM_BUILD_DIR")) return std::string(b) + "/edgevlm";
  return (fs::read_symlink("/proc/self/exe").parent_path() / "edgevlm").string();
}

struct Outcome {
  int rc = -1;
  std::string err;
  double peak_mib = 0;
};

// The children are started by a small launcher process forked before main, while this test binary
// is small: Linux keeps a process's peak RSS across execve, and a child forked from the test
// process starts as a copy of it, so its peak would count whatever the tests that ran before held.
// The launcher reads requests (argv, NUL-separated, after a length) from one pipe, forks and execs
// each, and writes back its exit status and wait4's ru_maxrss; it ends when the pipe closes.
class Launcher {
 public:
  Launcher() {
    int req[2], resp[2];
    if (pipe(req) != 0 || pipe(resp) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(req[1]);
      close(resp[0]);
      serve(req[0], resp[1]);
      _exit(0);
    }
    close(req[0]);
    close(resp[1]);
    if (pid_ < 0) {
      close(req[1]);
      close(resp[0]);
      return;
    }
    req_ = req[1];
    resp_ = resp[0];
  }
  // args[0] is the binary; the child's stderr goes to err_path, its stdout to /dev/null.
  bool run(const std::vector<std::string>& args, const std::string& err_path, int* rc, long* maxrss_kib) {
    if (req_ < 0) return false;
    std::string blob = err_path + '\0';
    for (const std::string& a : args) blob += a + '\0';
    const uint64_t n = blob.size();
    long out[2];
    return write_all(req_, &n, sizeof n) && write_all(req_, blob.data(), blob.size()) &&
           read_all(resp_, out, sizeof out) && (*rc = int(out[0]), *maxrss_kib = out[1], true);
  }

 private:
  static bool write_all(int fd, const void* p, size_t n) {
    for (const char* c = static_cast<const char*>(p); n > 0;) {
      const ssize_t w = write(fd, c, n);
      if (w <= 0) return false;
      c += w;
      n -= size_t(w);
    }
    return true;
  }
  static bool read_all(int fd, void* p, size_t n) {
    for (char* c = static_cast<char*>(p); n > 0;) {
      const ssize_t r = read(fd, c, n);
      if (r <= 0) return false;
      c += r;
      n -= size_t(r);
    }
    return true;
  }
  static void serve(int in, int out) {
    uint64_t n = 0;
    while (read_all(in, &n, sizeof n) && n < (1u << 20)) {
      std::string blob(n, '\0');
      if (!read_all(in, blob.data(), n)) break;
      std::vector<char*> argv;
      for (size_t i = 0; i < n; i += std::strlen(&blob[i]) + 1) argv.push_back(&blob[i]);
      argv.push_back(nullptr);
      const pid_t pid = fork();
      if (pid == 0) {
        const int e = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644), null = open("/dev/null", O_WRONLY);
        if (e >= 0) dup2(e, 2);
        if (null >= 0) dup2(null, 1);
        execv(argv[1], argv.data() + 1);
        _exit(127);
      }
      int status = 0;
      rusage ru{};
      long res[2] = {-1, 0};
      if (pid > 0 && wait4(pid, &status, 0, &ru) == pid) {
        res[0] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        res[1] = ru.ru_maxrss;
      }
      if (!write_all(out, res, sizeof res)) break;
    }
  }
  pid_t pid_ = -1;
  int req_ = -1, resp_ = -1;
};
Launcher& launcher() {
  static Launcher l;
  return l;
}
[[maybe_unused]] const bool kLauncherStartedBeforeMain = (launcher(), true);

// Runs the binary with args; stderr captured, stdout discarded; peak RSS of the child.
Outcome run_child(const std::vector<std::string>& args) {
  const fs::path err_path = fs::temp_directory_path() / ("edgevlm_hostile_" + std::to_string(getpid()) + ".err");
  std::vector<std::string> argv = {binary_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  Outcome o;
  long maxrss_kib = 0;
  EXPECT_TRUE(launcher().run(argv, err_path.string(), &o.rc, &maxrss_kib)) << "the launcher process is not running";
  o.peak_mib = double(maxrss_kib) / 1024.0;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  o.err = ss.str();
  fs::remove(err_path);
  return o;
}

class HostileFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(binary_path())) GTEST_SKIP() << "edgevlm binary not built at " << binary_path();
    dir_ = fs::temp_directory_path() / ("edgevlm_hostile_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs and checks: exit status 1, the message has `needle`, peak RSS within the bound.
  void expect_refused(const std::vector<std::string>& args, const std::vector<std::string>& files,
                      const std::string& needle) {
    double bytes = 0;
    for (const auto& f : files) bytes += double(fs::file_size(f));
    const double bound = kRssPerFileByte * bytes / (1 << 20) + kRssConstantMiB;
    const Outcome o = run_child(args);
    EXPECT_EQ(o.rc, 1) << o.err;
    EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
    EXPECT_LT(o.peak_mib, bound) << "peak RSS " << o.peak_mib << " MiB for " << bytes / (1 << 20) << " MiB of files";
    std::printf("[hostile] %-40s peak RSS %6.1f MiB (bound %.1f MiB, files %.2f MiB)\n", needle.c_str(), o.peak_mib,
                bound, bytes / (1 << 20));
  }

  fs::path dir_;
};

std::vector<uint8_t> read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_file(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Points every tensor's data at the first tensor's bytes where it fits there (the shape stays),
// by rewriting the offset fields of the tensor table: the memory bomb of many matrices over one
// stretch of bytes, each of which would get its own prepared copy.
std::vector<uint8_t> overlap_tensors(std::vector<uint8_t> bytes) {
  auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "x");
  const GGUFTensorInfo& first = f->tensors().at(0);
  for (size_t i = 1; i < f->tensors().size(); ++i) {
    const GGUFTensorInfo& t = f->tensors()[i];
    // The info: u64 name length, name, u32 n_dims, i64 × n_dims, u32 type, u64 offset.
    std::vector<uint8_t> key(8 + t.name.size());
    const uint64_t len = t.name.size();
    std::memcpy(key.data(), &len, 8);
    std::memcpy(key.data() + 8, t.name.data(), t.name.size());
    auto at = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
    if (at == bytes.end()) continue;
    const size_t off_at = size_t(at - bytes.begin()) + key.size() + 4 + 8 * t.ne.size() + 4;
    std::memcpy(bytes.data() + off_at, &first.offset, 8);
  }
  return bytes;
}

std::string write_llm(const std::string& p) {
  RandomLlamaSpec s;
  s.n_embd = 64, s.n_layer = 8, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 128, s.n_ctx = 128;
  s.vocab_from = std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/tiny.gguf";
  s.weight_type = GGMLType::Q8_0;
  write_random_llama(p, s);
  return p;
}

TEST_F(HostileFiles, DecoderWithOverlappingTensors) {
  const std::string good = write_llm(path("good.gguf")), bad = path("overlap.gguf");
  write_file(bad, overlap_tensors(read_file(good)));
  expect_refused({"generate", "-m", bad, "--prompt-tokens", "1,2,3", "-n", "2"}, {bad}, "overlap");
}

TEST_F(HostileFiles, MmprojWithOverlappingTensors) {
  RandomMmprojSpec spec;
  spec.weight_type = GGMLType::Q8_0;
  const std::vector<uint8_t> good = make_random_mmproj(spec).writer().serialize();
  const std::string llm = write_llm(path("llm.gguf")), bad = path("overlap-mmproj.gguf");
  write_file(bad, overlap_tensors(good));
  expect_refused({"run", "-m", llm, "--mmproj", bad, "-p", "hi", "-n", "2"}, {llm, bad}, "overlap");
}

TEST_F(HostileFiles, MmprojPatchCountBomb) {
  RandomMmproj r = make_random_mmproj({});
  for (auto& kv : r.keys) {
    if (kv.first == "clip.vision.image_size") kv.second = GGUFValue::from_u32(1024);
    if (kv.first == "clip.vision.patch_size") kv.second = GGUFValue::from_u32(1);
  }
  const std::string llm = write_llm(path("llm.gguf")), bad = path("patches.gguf");
  write_file(bad, r.writer().serialize());
  expect_refused({"run", "-m", llm, "--mmproj", bad, "-p", "hi", "-n", "2"}, {llm, bad}, "patches per tile");
}

TEST_F(HostileFiles, MetadataBomb) {
  // Two million empty nested arrays: 24 MB of file that would parse into hundreds of MB.
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); };
  auto u64 = [&](uint64_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 8); };
  const uint64_t n = 2000000;
  b.insert(b.end(), {'G', 'G', 'U', 'F'});
  u32(3), u64(0), u64(1), u64(4);
  b.insert(b.end(), {'b', 'o', 'm', 'b'});
  u32(uint32_t(GGUFType::ARRAY)), u32(uint32_t(GGUFType::ARRAY)), u64(n);
  for (uint64_t i = 0; i < n; ++i) u32(uint32_t(GGUFType::UINT8)), u64(0);
  const std::string bad = path("metadata.gguf");
  write_file(bad, b);
  expect_refused({"generate", "-m", bad, "-p", "hi"}, {bad}, "metadata would take more than");
}

TEST_F(HostileFiles, NanInAWeightTheLoaderRequantizes) {
  RandomMmprojSpec spec;
  spec.n_ff = 40;
  spec.weight_type = GGMLType::Q8_0;
  RandomMmproj r = make_random_mmproj(spec);
  r.find("v.blk.0.ffn_down.weight")->values[3] = std::nanf("");
  const std::string llm = write_llm(path("llm.gguf")), bad = path("nan.gguf");
  write_file(bad, r.writer().serialize());
  expect_refused({"run", "-m", llm, "--mmproj", bad, "-p", "hi", "-n", "2"}, {llm, bad}, "is NaN");
}

// An adapter that declares a rank of 100000 on one matrix of a 64-wide model: 51 MB of file whose
// terms (and a merged product) would outgrow the model many times over. Refused, naming the rank,
// without a copy of the tensors in memory; and the same adapter's tensors over one stretch of bytes.
TEST_F(HostileFiles, LoraWithAHugeRank) {
  const std::string llm = write_llm(path("llm.gguf")), bad = path("rank.gguf"), overlap = path("lora-overlap.gguf");
  {
    // Scoped: the 51 MB of tensors are freed before the binary runs.
    const int64_t e = 64, r = 100000;
    GGUFWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.type", "adapter");
    w.set_string("adapter.type", "lora");
    w.set_f32("adapter.lora.alpha", 16);
    const std::vector<float> a(size_t(e * r), 0.01f);
    w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F32, {e, r}, a.data());
    w.add_tensor_f32("blk.0.attn_q.weight.lora_b", GGMLType::F32, {r, e}, a.data());
    w.write(bad);
  }
  expect_refused({"generate", "-m", llm, "--lora", bad, "--prompt-tokens", "1,2,3", "-n", "2"}, {llm, bad},
                 "has rank 100000, above the smaller side 64");
  write_file(overlap, overlap_tensors(read_file(bad)));
  expect_refused({"generate", "-m", llm, "--lora", overlap, "--prompt-tokens", "1,2,3", "-n", "2"}, {llm, overlap},
                 "overlap");
}

// A Q4_K matrix whose first super-blocks hold an f16 NaN and an f16 infinity as their scale d: the
// forward pass is IEEE arithmetic on them (no UB: this suite runs in the UBSan build too), and the
// NaN logits end in an error naming the file rather than tokens drawn from noise.
TEST_F(HostileFiles, KQuantWithNanAndInfScales) {
  RandomLlamaSpec s;
  s.n_embd = 256, s.n_layer = 1, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 256, s.n_ctx = 64;
  s.vocab_from = std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/tiny.gguf";
  const std::string f32 = path("f32.gguf"), bad = path("q4k-nan.gguf");
  write_random_llama(f32, s);
  {  // scoped, as above
    auto f = GGUFFile::open(f32);
    GGUFWriter w;
    for (const auto& [k, v] : f->metadata()) w.set(k, v);
    for (const GGUFTensorInfo& t : f->tensors()) {
      if (t.name != "blk.0.attn_q.weight" && t.name != "blk.0.ffn_down.weight") {
        w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
        continue;
      }
      const int64_t n_in = t.ne[0], rows = t.ne[1];
      const size_t rb = row_bytes(GGMLType::Q4_K, n_in);
      std::vector<uint8_t> q(rb * size_t(rows));
      const float* v = reinterpret_cast<const float*>(t.data);
      for (int64_t o = 0; o < rows; ++o) quantize_row(GGMLType::Q4_K, v + o * n_in, q.data() + size_t(o) * rb, n_in);
      const uint16_t nan = 0x7E00, inf = 0x7C00;
      std::memcpy(q.data(), &nan, 2);                              // d of block 0
      std::memcpy(q.data() + sizeof(BlockQ4_K), &inf, 2);          // d of block 1
      std::memcpy(q.data() + 2 * sizeof(BlockQ4_K) + 2, &nan, 2);  // dmin of block 2
      w.add_tensor(t.name, GGMLType::Q4_K, t.ne, q.data(), q.size());
    }
    w.write(bad);
  }
  expect_refused({"generate", "-m", bad, "--prompt-tokens", "1,2,3", "-n", "2"}, {bad}, "logits are NaN");
}

}  // namespace
}  // namespace edgevlm
