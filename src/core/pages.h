// Memory pages: large buffers on 2 MiB pages, and releasing the pages of read-only file mappings
// (the GGUF weights) from this process.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace edgevlm {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using HugeBuffer = std::unique_ptr<T[], FreeDeleter>;

// Uninitialised memory for n elements, on transparent 2 MiB pages where the kernel allows
// (madvise mode) when at least 1 MiB; null when out of memory. Large buffers filled once per use
// (repacked weights, the ViT's activations): on 4 KiB pages each first touch is a page fault, and
// in a virtual machine those faults cost more than the writes (measured: 7% of a ViT encode).
void* alloc_huge_bytes(size_t bytes);
// The same start (2 MiB-aligned, huge pages asked for) without rounding the size up: the whole 2 MiB
// pages inside get huge pages, the tail normal ones, so long-lived copies of many matrices do not
// each carry up to 2 MiB of unused huge page in RSS. Freed with std::free.
void* alloc_huge_bytes_unrounded(size_t bytes);
template <typename T>
HugeBuffer<T> alloc_huge(size_t n) {
  return HugeBuffer<T>(static_cast<T*>(alloc_huge_bytes(n * sizeof(T))));
}

// Drops the whole pages inside [p, p + n) from this process (madvise MADV_DONTNEED) when the
// range lies in one read-only mapping of a file: such pages are clean, so the kernel discards
// them and faults them back in from the file if they are read again — the bytes seen never
// change. Any other memory (heap, anonymous or writable mappings, where MADV_DONTNEED would zero
// or lose data) is left alone. Returns the bytes released (0 when nothing was).
size_t release_file_pages(const void* p, size_t n);

// Whether [p, p + n) lies inside one read-only mapping of a file (the memory release_file_pages
// acts on). Reads /proc/self/maps, tens of microseconds: ask once, then release_mapped_file_pages.
bool in_read_only_file_mapping(const void* p, size_t n);
// release_file_pages without the look-up, for a range in_read_only_file_mapping vouched for (and
// still mapped): cheap enough to call once per use of the range.
size_t release_mapped_file_pages(const void* p, size_t n);

// Resident bytes of the mapping that contains p (its Rss in /proc/self/smaps); -1 when p is not
// in a mapping or smaps is unavailable. For tests and diagnostics.
long long mapping_resident_bytes(const void* p);
// Bytes of the pages overlapping [p, p + n) that are mapped in this process (/proc/self/pagemap);
// -1 when pagemap is unavailable. For tests and diagnostics.
long long range_resident_bytes(const void* p, size_t n);

// A field of /proc/self/status in MiB ("VmHWM", "VmRSS"); -1 when unavailable.
double proc_status_mib(const char* field);
// Resets VmHWM to the current RSS (/proc/self/clear_refs "5"); false when the kernel refuses.
bool reset_peak_rss();

}  // namespace edgevlm
