// Memory pages of read-only file mappings (the GGUF weights): releasing them from this process.
#pragma once

#include <cstddef>

namespace edgevlm {

// Drops the whole pages inside [p, p + n) from this process (madvise MADV_DONTNEED) when the
// range lies in one read-only mapping of a file: such pages are clean, so the kernel discards
// them and faults them back in from the file if they are read again — the bytes seen never
// change. Any other memory (heap, anonymous or writable mappings, where MADV_DONTNEED would zero
// or lose data) is left alone. Returns the bytes released (0 when nothing was).
size_t release_file_pages(const void* p, size_t n);

// Resident bytes of the mapping that contains p (its Rss in /proc/self/smaps); -1 when p is not
// in a mapping or smaps is unavailable. For tests and diagnostics.
long long mapping_resident_bytes(const void* p);

}  // namespace edgevlm
