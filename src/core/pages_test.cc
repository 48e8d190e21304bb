#include "core/pages.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace edgevlm {
namespace {

namespace fs = std::filesystem;

// A temporary file of n bytes (byte i = i·7 mod 251), mapped read-only like GGUFFile::open.
class MappedFile {
 public:
  MappedFile(size_t n, int prot = PROT_READ, int flags = MAP_SHARED) : n_(n) {
    static int serial = 0;
    path_ = (fs::temp_directory_path() /
             ("edgevlm_pages_test_" + std::to_string(getpid()) + "_" + std::to_string(serial++)))
                .string();
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = uint8_t(i * 7 % 251);
    int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), n), ssize_t(n));
    void* p = mmap(nullptr, n, prot, flags, fd, 0);
    close(fd);
    EXPECT_NE(p, MAP_FAILED);
    data_ = static_cast<uint8_t*>(p);
  }
  ~MappedFile() {
    munmap(data_, n_);
    fs::remove(path_);
  }
  uint8_t* data() const { return data_; }
  // Reads every byte and checks it against the file's pattern (faults the pages in).
  bool intact() const {
    for (size_t i = 0; i < n_; ++i)
      if (data_[i] != uint8_t(i * 7 % 251)) return false;
    return true;
  }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t n_;
};

TEST(Pages, ReleasesTheInteriorOfAReadOnlyFileMapping) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), n = 64 * page;
  MappedFile f(n);
  ASSERT_TRUE(f.intact());
  const long long before = mapping_resident_bytes(f.data());
  if (before < 0) GTEST_SKIP() << "no /proc/self/smaps";
  EXPECT_EQ(before, (long long)n);
  // From 100 bytes in to 100 bytes before the end: the first and last pages are partial, kept.
  EXPECT_EQ(release_file_pages(f.data() + 100, n - 200), n - 2 * page);
  EXPECT_EQ(mapping_resident_bytes(f.data()), (long long)(2 * page));
  EXPECT_TRUE(f.intact());  // faulted back in from the file, unchanged
  EXPECT_EQ(mapping_resident_bytes(f.data()), (long long)n);
  // Less than a whole page: nothing to release.
  EXPECT_EQ(release_file_pages(f.data() + 1, page), 0u);
  EXPECT_EQ(release_file_pages(nullptr, n), 0u);
}

TEST(Pages, LeavesOtherMemoryAlone) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), n = 16 * page;
  // Heap: MADV_DONTNEED would zero it.
  std::vector<uint8_t> heap(n, 0x5A);
  EXPECT_EQ(release_file_pages(heap.data(), n), 0u);
  for (uint8_t b : heap) ASSERT_EQ(b, 0x5A);
  // A private writable file mapping with a modified page: the change would be lost.
  MappedFile w(n, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  w.data()[5 * page] ^= 0xFF;
  EXPECT_EQ(release_file_pages(w.data(), n), 0u);
  EXPECT_EQ(w.data()[5 * page], uint8_t((5 * page * 7 % 251) ^ 0xFF));
  // A range running past the end of a read-only mapping.
  MappedFile r(n);
  EXPECT_EQ(release_file_pages(r.data(), n + 64 * page), 0u);
  EXPECT_TRUE(r.intact());
}

// The split API: the mapping checked once, then released without the look-up; pagemap sees the
// pages go and come back.
TEST(Pages, CheckOnceThenReleaseAndPagemapAgrees) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), n = 32 * page;
  MappedFile f(n);
  ASSERT_TRUE(f.intact());
  EXPECT_TRUE(in_read_only_file_mapping(f.data() + 10, n - 10));
  EXPECT_FALSE(in_read_only_file_mapping(f.data(), n + 64 * page));  // past its end
  std::vector<uint8_t> heap(n, 1);
  EXPECT_FALSE(in_read_only_file_mapping(heap.data(), n));
  EXPECT_FALSE(in_read_only_file_mapping(nullptr, n));
  EXPECT_FALSE(in_read_only_file_mapping(f.data(), SIZE_MAX));
  const long long resident = range_resident_bytes(f.data(), n);
  if (resident < 0) GTEST_SKIP() << "no /proc/self/pagemap";
  EXPECT_EQ(resident, (long long)n);
  EXPECT_GE(range_resident_bytes(heap.data(), n), (long long)n);  // written, so present
  EXPECT_EQ(release_mapped_file_pages(f.data(), n), n);
  EXPECT_EQ(range_resident_bytes(f.data(), n), 0);
  EXPECT_EQ(f.data()[3 * page + 5], uint8_t((3 * page + 5) * 7 % 251));  // faulted back in
  EXPECT_GE(range_resident_bytes(f.data() + 3 * page, page), (long long)page);
  EXPECT_TRUE(f.intact());
}

}  // namespace
}  // namespace edgevlm
