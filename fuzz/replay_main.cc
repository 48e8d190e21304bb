// A libFuzzer-compatible driver for builds without libFuzzer (gcc's ASan + UBSan build in
// `make test`): runs LLVMFuzzerTestOneInput on every file named (or in every directory named),
// then on random mutations of them for --seconds=N (deterministic, --seed=S). Coverage-guided
// fuzzing stays with clang's libFuzzer (`make fuzz`); this keeps the targets and their corpora
// checked under the sanitizers on every test run, with one build fewer.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void mutate(std::vector<uint8_t>& d, std::mt19937_64& rng, const std::vector<std::vector<uint8_t>>& corpus) {
  const int n = 1 + int(rng() % 4);
  for (int k = 0; k < n; ++k) {
    const size_t size = d.size();
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (size) d[rng() % size] ^= uint8_t(1u << (rng() % 8));
        break;
      case 1: {  // an interesting value over 1, 2, 4 or 8 bytes
        static const uint64_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff, ~0ull, 1ull << 40};
        const size_t w = size_t(1) << (rng() % 4);
        if (size >= w) {
          const uint64_t v = vals[rng() % (sizeof vals / sizeof vals[0])];
          std::memcpy(d.data() + rng() % (size - w + 1), &v, w);
        }
        break;
      }
      case 2:  // truncate
        if (size) d.resize(rng() % size);
        break;
      case 3: {  // erase a range
        if (size < 2) break;
        const size_t at = rng() % size, len = 1 + rng() % std::min<size_t>(size - at, 64);
        d.erase(d.begin() + at, d.begin() + at + len);
        break;
      }
      case 4: {  // insert random bytes
        const size_t at = size ? rng() % size : 0, len = 1 + rng() % 16;
        std::vector<uint8_t> ins(len);
        for (auto& b : ins) b = uint8_t(rng());
        d.insert(d.begin() + at, ins.begin(), ins.end());
        break;
      }
      case 5: {  // splice in a piece of another input
        const auto& o = corpus[rng() % corpus.size()];
        if (o.empty()) break;
        const size_t from = rng() % o.size(), len = 1 + rng() % std::min<size_t>(o.size() - from, 256);
        const size_t at = size ? rng() % size : 0;
        d.insert(d.begin() + at, o.begin() + from, o.begin() + from + len);
        break;
      }
      default:  // a random byte
        if (size) d[rng() % size] = uint8_t(rng());
    }
  }
  if (d.size() > 65536) d.resize(65536);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0;
  uint64_t seed = 1;
  std::vector<std::vector<uint8_t>> corpus;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) {
      seconds = std::atof(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--seed=", 7) == 0) {
      seed = std::strtoull(argv[i] + 7, nullptr, 10);
    } else if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) corpus.push_back(read_file(e.path()));
    } else {
      corpus.push_back(read_file(argv[i]));
    }
  }
  for (const auto& d : corpus) LLVMFuzzerTestOneInput(d.data(), d.size());
  uint64_t runs = corpus.size();
  if (seconds > 0 && !corpus.empty()) {
    std::mt19937_64 rng(seed);
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      std::vector<uint8_t> d = corpus[rng() % corpus.size()];
      mutate(d, rng, corpus);
      LLVMFuzzerTestOneInput(d.data(), d.size());
      ++runs;
    }
  }
  std::printf("stat::number_of_executed_units: %llu\n", (unsigned long long)runs);
  return 0;
}
