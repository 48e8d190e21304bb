#include "core/pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace edgevlm {

void* alloc_huge_bytes(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < kHuge / 2) return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + (bytes == 0 ? 64 : 0));
  if (bytes > SIZE_MAX - kHuge) return nullptr;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
#if defined(MADV_HUGEPAGE)
  if (p) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

void* alloc_huge_bytes_unrounded(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < kHuge) return alloc_huge_bytes(bytes);
  if (bytes > SIZE_MAX - kHuge) return nullptr;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge, whole = bytes / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);  // only the bytes touched become resident
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  if (p) {
    madvise(p, whole, MADV_HUGEPAGE);
    // With transparent huge pages "always", the partly used last one would be whole in RSS.
    if (rounded > whole) madvise(static_cast<char*>(p) + whole, rounded - whole, MADV_NOHUGEPAGE);
  }
#endif
  return p;
}

namespace {

struct MapLine {
  uintptr_t begin = 0, end = 0;
  bool writable = false;
  unsigned long long inode = 0;  // 0: anonymous (heap, stack, [vdso], ...)
};

// "b-e perms offset dev inode [path]", as /proc/self/maps and the header lines of smaps write it.
bool parse_map_line(const std::string& line, MapLine& m) {
  unsigned long long b = 0, e = 0, off = 0, ino = 0;
  char perms[8] = {0};
  unsigned dev_major = 0, dev_minor = 0;
  if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &b, &e, perms, &off, &dev_major, &dev_minor,
                  &ino) != 7)
    return false;
  m.begin = uintptr_t(b);
  m.end = uintptr_t(e);
  m.writable = perms[1] == 'w';
  m.inode = ino;
  return true;
}

}  // namespace

bool in_read_only_file_mapping(const void* p, size_t n) {
  if (p == nullptr || n == 0 || n > UINTPTR_MAX - uintptr_t(p)) return false;
  const uintptr_t lo = uintptr_t(p), hi = lo + n;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    MapLine m;
    if (!parse_map_line(line, m) || lo < m.begin || lo >= m.end) continue;
    return hi <= m.end && !m.writable && m.inode != 0;
  }
  return false;
}

size_t release_mapped_file_pages(const void* p, size_t n) {
  if (p == nullptr || n == 0) return 0;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (uintptr_t(p) + page - 1) / page * page;
  const uintptr_t hi = (uintptr_t(p) + n) / page * page;
  if (lo >= hi) return 0;
  return madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) == 0 ? size_t(hi - lo) : 0;
}

size_t release_file_pages(const void* p, size_t n) {
  return in_read_only_file_mapping(p, n) ? release_mapped_file_pages(p, n) : 0;
}

long long mapping_resident_bytes(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in = false;
  while (std::getline(smaps, line)) {
    MapLine m;
    if (parse_map_line(line, m)) {
      in = uintptr_t(p) >= m.begin && uintptr_t(p) < m.end;
    } else if (in && line.rfind("Rss:", 0) == 0) {
      return std::stoll(line.substr(4)) * 1024;
    }
  }
  return -1;
}

long long range_resident_bytes(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  if (p == nullptr || n == 0 || n > UINTPTR_MAX - uintptr_t(p)) return -1;
  const uintptr_t first = uintptr_t(p) / page, last = (uintptr_t(p) + n - 1) / page;
  const int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return -1;
  long long resident = 0;
  for (uintptr_t i = first; i <= last && resident >= 0; ++i) {
    uint64_t entry = 0;
    if (pread(fd, &entry, sizeof entry, off_t(i * 8)) != ssize_t(sizeof entry)) resident = -1;
    else if (entry >> 63) resident += (long long)page;  // bit 63: present in this process
  }
  close(fd);
  return resident;
}

double proc_status_mib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  const size_t n = std::strlen(field);
  double mib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') {
      mib = std::atof(line + n + 1) / 1024.0;  // kB
      break;
    }
  std::fclose(f);
  return mib;
}

bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool wrote = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && wrote;
}

}  // namespace edgevlm
