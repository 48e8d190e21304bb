#include "vision/image.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <memory>

#include <sys/stat.h>

#include "core/error.h"

// The one stb_image implementation in the project. Static linkage keeps it private to this file
// (no clash with a system libstb or another copy); only the formats we document are compiled in,
// which also keeps the attack surface of the decoder small.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include "stb_image.h"
#pragma GCC diagnostic pop

namespace edgevlm {

Image::Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3, 0) {}

namespace {

uint16_t rd16(const uint8_t* p, bool le) { return le ? (p[0] | p[1] << 8) : (p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p, bool le) {
  return le ? (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24)
            : (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]));
}

// Orientation from a TIFF structure (the payload of an Exif APP1 after "Exif\0\0"); 0 if absent.
int tiff_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 0;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 0;
  if (rd16(t + 2, le) != 42) return 0;
  uint32_t ifd = rd32(t + 4, le);
  if (ifd > n || n - ifd < 2) return 0;
  unsigned count = rd16(t + ifd, le);
  for (unsigned i = 0; i < count; ++i) {
    size_t e = size_t(ifd) + 2 + size_t(i) * 12;
    if (e > n || n - e < 12) break;
    if (rd16(t + e, le) != 0x0112) continue;
    uint16_t type = rd16(t + e + 2, le);
    uint32_t cnt = rd32(t + e + 4, le);
    if (cnt < 1) return 0;
    // The spec says SHORT; some writers use LONG. Either way the value sits inline.
    uint32_t v = type == 3 ? rd16(t + e + 8, le) : type == 4 ? rd32(t + e + 8, le) : 0;
    return (v >= 1 && v <= 8) ? int(v) : 0;
  }
  return 0;
}

// Offset just past the start-of-image marker, or 0 when stb_image would not take the buffer for a
// JPEG (it allows 0xFF fill bytes before SOI, so we do too).
size_t jpeg_soi_end(const uint8_t* d, size_t n) {
  size_t p = 0;
  while (p < n && d[p] == 0xFF) ++p;
  return (p >= 1 && p < n && d[p] == 0xD8) ? p + 1 : 0;
}

// Walks the whole marker structure of a JPEG before stb_image sees it; returns why it is refused,
// or nullptr. Two reasons:
// - stb_image decodes a JPEG whose entropy-coded data stops early by padding with zeros, which would
//   hand a silently grey-bottomed image to the model. Like PIL (without LOAD_TRUNCATED_IMAGES) we
//   refuse a JPEG that ends before its end-of-image marker.
// - stb_image 2.27 (Debian's libstb-dev) writes past its Huffman tables when a DHT segment declares
//   more than 256 codes (fixed upstream in 2.28), and decodes a scan with a Huffman table no DHT
//   defined: the table is uninitialized memory and the decoder indexes it with garbage (found by
//   fuzz_image). Every DHT is checked here first, and every scan's tables must be defined before it.
// The walk is strict (no junk between segments); stb would skip such junk, we call the file corrupt,
// so stb never parses a segment this walk has not checked.
const char* jpeg_structure_error(const uint8_t* d, size_t n) {
  size_t p = jpeg_soi_end(d, n);
  bool scanned = false;
  bool defined[2][4] = {};  // [DC, AC][table id] seen in a DHT
  bool progressive = false;  // SOF2; sequential frames decode every scan with both tables
  while (true) {
    if (p + 2 > n) return "truncated JPEG (ends before the end-of-image marker)";
    if (d[p] != 0xFF) return "corrupt JPEG (bytes between segments)";
    uint8_t m = d[p + 1];
    if (m == 0xFF) { ++p; continue; }  // fill byte
    p += 2;
    if (m == 0xD9) return scanned ? nullptr : "corrupt JPEG (end-of-image marker before any scan)";
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;
    if (m == 0x00) return "corrupt JPEG (invalid marker)";
    if (n - p < 2) return "truncated JPEG (ends inside a segment header)";
    const size_t len = size_t(d[p]) << 8 | d[p + 1];
    if (len < 2) return "corrupt JPEG (segment length below 2)";
    if (len > n - p) return "truncated JPEG (ends inside a segment)";
    if (m == 0xC4) {
      size_t q = p + 2;
      const size_t end = p + len;
      while (q < end) {
        if (end - q < 17) return "corrupt JPEG (short Huffman table)";
        if ((d[q] >> 4) > 1 || (d[q] & 15) > 3) return "corrupt JPEG (bad Huffman table id)";
        size_t codes = 0;
        for (int i = 1; i <= 16; ++i) codes += d[q + i];
        if (codes > 256) return "corrupt JPEG (Huffman table with more than 256 codes)";
        if (end - q - 17 < codes) return "corrupt JPEG (Huffman table longer than its segment)";
        defined[d[q] >> 4][d[q] & 15] = true;
        q += 17 + codes;
      }
    }
    if (m == 0xC2) progressive = true;
    if (m == 0xDA) {
      // Start of scan: Ns, Ns × (component, DC table << 4 | AC table), Ss, Se, Ah << 4 | Al. A
      // sequential frame's scans decode with both tables whatever Ss and Se say; a progressive
      // frame's first DC scan (Ss = 0, Ah = 0) with the DC tables, a scan with Se > 0 with the AC ones.
      const size_t ns = len >= 3 ? d[p + 2] : 0;
      if (len < 6 || len != 6 + 2 * ns) return "corrupt JPEG (bad start-of-scan header)";
      const uint8_t ss = d[p + 3 + 2 * ns], se = d[p + 4 + 2 * ns], ah = d[p + 5 + 2 * ns] >> 4;
      for (size_t c = 0; c < ns; ++c) {
        const uint8_t tables = d[p + 4 + 2 * c];
        if ((!progressive || (ss == 0 && ah == 0)) && ((tables >> 4) > 3 || !defined[0][tables >> 4]))
          return "corrupt JPEG (scan uses a DC Huffman table no DHT segment defined)";
        if ((!progressive || se > 0) && ((tables & 15) > 3 || !defined[1][tables & 15]))
          return "corrupt JPEG (scan uses an AC Huffman table no DHT segment defined)";
      }
    }
    p += len;
    if (m == 0xDA) {
      scanned = true;
      // Entropy-coded data runs to the next marker: 0xFF followed by neither 0x00 (a stuffed 0xFF),
      // 0xFF (fill) nor a restart marker.
      while (p + 1 < n && !(d[p] == 0xFF && d[p + 1] != 0x00 && d[p + 1] != 0xFF && (d[p + 1] < 0xD0 || d[p + 1] > 0xD7)))
        ++p;
    }
  }
}

// Binary PGM/PPM (P5/P6), the PNM flavours stb_image reads. stb_image 2.27 does not check that the
// pixel data is all there (a short file leaves uninitialised memory in the image), overflows an int
// on long numbers, returns 16-bit samples in file (big-endian) byte order and ignores maxval. So the
// header is parsed here first, strictly, with the same token rules, and the data length checked.
struct PnmHeader {
  int64_t width = 0, height = 0, maxval = 0;
  int channels = 0;
  size_t data_offset = 0;
};
bool is_pnm(const uint8_t* d, size_t n) { return n >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '6'); }
bool pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

const char* pnm_parse(const uint8_t* d, size_t n, PnmHeader& h) {
  h.channels = d[1] == '6' ? 3 : 1;
  size_t p = 2;
  auto skip = [&] {
    while (p < n) {
      if (pnm_space(d[p])) ++p;
      else if (d[p] == '#') while (p < n && d[p] != '\n' && d[p] != '\r') ++p;
      else break;
    }
  };
  auto number = [&](int64_t& v) -> bool {
    size_t start = p;
    v = 0;
    while (p < n && d[p] >= '0' && d[p] <= '9' && p - start < 9) v = v * 10 + (d[p++] - '0');
    return p > start && !(p < n && d[p] >= '0' && d[p] <= '9');
  };
  if (p >= n || !pnm_space(d[p])) return "corrupt PNM header";
  skip();
  if (!number(h.width)) return "corrupt PNM header (width)";
  skip();
  if (!number(h.height)) return "corrupt PNM header (height)";
  skip();
  if (!number(h.maxval)) return "corrupt PNM header (maximum value)";
  if (h.maxval < 1 || h.maxval > 65535) return "corrupt PNM header (maximum value must be 1..65535)";
  if (p >= n || !pnm_space(d[p])) return "truncated PNM (no pixel data)";
  h.data_offset = p + 1;
  const uint64_t need = uint64_t(h.width) * uint64_t(h.height) * h.channels * (h.maxval > 255 ? 2 : 1);
  if (n - h.data_offset < need) return "truncated PNM (less pixel data than the header declares)";
  return nullptr;
}

// stb_image pads a short BMP or GIF with zeros and reports success, which would pass a partly blank
// image to the model. These walks refuse files that end before the (first) image's data does.
const char* bmp_truncation(const uint8_t* d, size_t n) {
  if (n < 26) return "truncated BMP header";
  const uint32_t offset = rd32(d + 10, true), dib = rd32(d + 14, true);
  int64_t w, h;
  uint32_t bpp, compression = 0;
  if (dib == 12) {
    w = rd16(d + 18, true);
    h = rd16(d + 20, true);
    bpp = rd16(d + 24, true);
  } else {
    if (n < 34) return "truncated BMP header";
    w = int32_t(rd32(d + 18, true));
    h = int32_t(rd32(d + 22, true));
    bpp = rd16(d + 28, true);
    compression = rd32(d + 30, true);
  }
  if (compression != 0 && compression != 3 && compression != 6) return nullptr;  // stb rejects RLE itself
  const uint64_t row = (uint64_t(bpp) * uint64_t(w < 0 ? -w : w) + 31) / 32 * 4;
  const uint64_t need = uint64_t(offset) + row * uint64_t(h < 0 ? -h : h);
  return n < need ? "truncated BMP (less pixel data than the header declares)" : nullptr;
}

bool is_gif(const uint8_t* d, size_t n) { return n >= 6 && std::memcmp(d, "GIF8", 4) == 0; }

const char* gif_truncation(const uint8_t* d, size_t n) {
  if (n < 13) return "truncated GIF header";
  size_t p = 13;
  if (d[10] & 0x80) p += 3 * (size_t(1) << ((d[10] & 7) + 1));
  auto sub_blocks = [&]() -> bool {  // true when the terminating empty block is inside the file
    while (p < n) {
      const size_t len = d[p++];
      if (len == 0) return true;
      if (len > n - p) return false;
      p += len;
    }
    return false;
  };
  while (p < n) {
    const uint8_t b = d[p++];
    if (b == 0x21) {
      if (p >= n) break;
      ++p;
      if (!sub_blocks()) break;
    } else if (b == 0x2C) {
      if (n - p < 9) break;
      const uint8_t flags = d[p + 8];
      p += 9;
      if (flags & 0x80) p += 3 * (size_t(1) << ((flags & 7) + 1));
      if (p >= n) break;
      ++p;  // LZW minimum code size
      return sub_blocks() ? nullptr : "truncated GIF (first frame's data is cut off)";
    } else if (b == 0x3B) {
      return "GIF without any image";
    } else {
      return "corrupt GIF (unknown block)";
    }
  }
  return "truncated GIF (ends before its first frame)";
}

inline uint8_t over_white8(unsigned c, unsigned a) { return uint8_t((c * a + 255u * (255u - a) + 127u) / 255u); }
inline uint8_t over_white16(uint64_t c, uint64_t a) {
  const uint64_t den = 65535ull * 65535ull;
  return uint8_t(((c * a + 65535ull * (65535ull - a)) * 255ull + den / 2) / den);
}
inline uint8_t to8(unsigned v16) { return uint8_t((v16 * 255u + 32767u) / 65535u); }

template <typename T>
void to_rgb(const T* src, int comp, Image& out) {
  const size_t n = size_t(out.width) * out.height;
  uint8_t* o = out.pixels.data();
  for (size_t i = 0; i < n; ++i, o += 3) {
    const T* s = src + i * comp;
    if constexpr (sizeof(T) == 1) {
      switch (comp) {
        case 1: o[0] = o[1] = o[2] = s[0]; break;
        case 2: o[0] = o[1] = o[2] = over_white8(s[0], s[1]); break;
        case 3: o[0] = s[0]; o[1] = s[1]; o[2] = s[2]; break;
        default: for (int c = 0; c < 3; ++c) o[c] = over_white8(s[c], s[3]); break;
      }
    } else {
      switch (comp) {
        case 1: o[0] = o[1] = o[2] = to8(s[0]); break;
        case 2: o[0] = o[1] = o[2] = over_white16(s[0], s[1]); break;
        case 3: for (int c = 0; c < 3; ++c) o[c] = to8(s[c]); break;
        default: for (int c = 0; c < 3; ++c) o[c] = over_white16(s[c], s[3]); break;
      }
    }
  }
}

struct StbiFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

bool is_png(const uint8_t* d, size_t n) { return n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0; }

// The PNG chunk structure before stb_image reads it: every chunk whole up to IEND, IHDR first.
// stb_image reads past the end as zeros and then reports a chunk type of four NUL bytes (an empty
// reason); here a file cut short says so.
const char* png_structure_error(const uint8_t* d, size_t n) {
  size_t p = 8;
  bool first = true;
  static thread_local char why[96];
  while (true) {
    if (n - p < 12) return first ? "truncated PNG (no IHDR chunk)" : "truncated PNG (ends before the IEND chunk)";
    const uint32_t len = rd32(d + p, false);
    char type[5] = {0};
    for (int i = 0; i < 4; ++i) type[i] = char(d[p + 4 + i]);
    for (int i = 0; i < 4; ++i)
      if (!((type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z')))
        return "corrupt PNG (a chunk type that is not four letters)";
    if (first) {
      if (std::strcmp(type, "IHDR") != 0) return "corrupt PNG (the first chunk is not IHDR)";
      if (len != 13) return "corrupt PNG (IHDR is not 13 bytes)";
    }
    if (len > n - p - 12) {
      std::snprintf(why, sizeof why, "truncated PNG (ends inside its %s chunk)", type);
      return why;
    }
    if (first) {
      if (rd32(d + p + 8, false) == 0 || rd32(d + p + 12, false) == 0) return "corrupt PNG (IHDR declares 0 pixels)";
      first = false;
    }
    if (std::strcmp(type, "IEND") == 0) return nullptr;
    p += 12 + size_t(len);
  }
}

// stb_image's failure reasons are short codes, and a few are cryptic or empty: the text for a user.
std::string stb_reason(const char* format) {
  const char* r = stbi_failure_reason();
  const std::string f = format ? format : "image";
  if (!r || !*r) return "the " + f + " decoder gave no reason";
  const std::string code = r;
  if (code == "too large") return "its dimensions are too large to decode";
  if (code == "outofmem") return "out of memory while decoding";
  if (code == "no IDAT") return "corrupt PNG (no image data: no IDAT chunk with bytes in it)";
  if (code == "not enough pixels") return "corrupt PNG (less image data than its dimensions need)";
  if (code == "unknown image type") return "not a readable JPEG, PNG, BMP, GIF or PNM file";
  return "corrupt " + f + " (" + code + ")";
}

// The format by its signature (as stb_image tells them apart), or null.
const char* format_of(const uint8_t* d, size_t n) {
  if (jpeg_soi_end(d, n)) return "JPEG";
  if (is_png(d, n)) return "PNG";
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
  if (is_gif(d, n)) return "GIF";
  if (n >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '6')) return "PNM";
  return nullptr;
}

// stb_image's header reader for that format alone, so that the failure reason is that format's
// (stbi_info_from_memory tries every reader and reports the last one's "unknown image type").
int format_info(const char* format, const uint8_t* d, int len, int* w, int* h, int* comp) {
  stbi__context s;
  stbi__start_mem(&s, d, len);
  const std::string f = format ? format : "";
  if (f == "JPEG") return stbi__jpeg_info(&s, w, h, comp);
  if (f == "PNG") return stbi__png_info(&s, w, h, comp);
  if (f == "BMP") return stbi__bmp_info(&s, w, h, comp);
  if (f == "GIF") return stbi__gif_info(&s, w, h, comp);
  if (f == "PNM") return stbi__pnm_info(&s, w, h, comp);
  return stbi_info_from_memory(d, len, w, h, comp);
}

}  // namespace

int jpeg_exif_orientation(const uint8_t* d, size_t n) {
  size_t p = d ? jpeg_soi_end(d, n) : 0;
  if (p == 0) return 1;
  while (p + 4 <= n) {
    if (d[p] != 0xFF) return 1;  // lost marker sync: give up rather than guess
    uint8_t m = d[p + 1];
    if (m == 0xFF) { ++p; continue; }  // fill byte
    p += 2;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // markers without a length
    if (m == 0xDA || m == 0xD9) return 1;                  // metadata precedes the first scan
    size_t len = size_t(d[p]) << 8 | d[p + 1];
    if (len < 2 || len > n - p) return 1;
    if (m == 0xE1 && len >= 2 + 6 && std::memcmp(d + p + 2, "Exif\0\0", 6) == 0) {
      int o = tiff_orientation(d + p + 8, len - 8);
      if (o) return o;
    }
    p += len;
  }
  return 1;
}

Image apply_exif_orientation(const Image& src, int orientation) {
  if (orientation < 2 || orientation > 8) return src;
  const int W = src.width, H = src.height;
  const bool swap = orientation >= 5;
  Image out(swap ? H : W, swap ? W : H);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx, sy;
      switch (orientation) {
        case 2: sx = W - 1 - x; sy = y; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sx = x; sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        default: sx = W - 1 - y; sy = x; break;  // 8
      }
      std::memcpy(out.at(x, y), src.at(sx, sy), 3);
    }
  }
  return out;
}

namespace {

// Everything load_image_from_memory checks before decoding a pixel; fills the facts decoding needs.
struct CheckedHeader {
  int w = 0, h = 0, comp = 0, len = 0;
  bool jpeg = false, is_pnm = false;
  PnmHeader pnm;
};

CheckedHeader check_image_header(const uint8_t* data, size_t size, const ImageLoadOptions& opt,
                                 const std::string& name) {
  CheckedHeader ch;
  const char* nm = name.c_str();
  if (!data || size == 0) fail("image '%s' is empty (0 bytes)", nm);
  if (opt.max_file_bytes > 0 && size > uint64_t(opt.max_file_bytes))
    fail("image '%s' is %zu bytes, over the file size limit of %lld bytes", nm, size,
         (long long)opt.max_file_bytes);
  if (size > size_t(INT_MAX)) fail("image '%s' is %zu bytes, more than the decoder can take", nm, size);
  ch.len = int(size);
  const int len = ch.len;

  // Before stb_image reads any JPEG header (see jpeg_structure_error).
  ch.jpeg = jpeg_soi_end(data, size) != 0;
  if (ch.jpeg) {
    if (const char* why = jpeg_structure_error(data, size)) fail("image '%s': %s", nm, why);
  }
  ch.is_pnm = is_pnm(data, size);
  if (ch.is_pnm) {
    if (const char* why = pnm_parse(data, size, ch.pnm)) fail("image '%s': %s", nm, why);
  }
  if (size >= 2 && data[0] == 'B' && data[1] == 'M') {
    if (const char* why = bmp_truncation(data, size)) fail("image '%s': %s", nm, why);
  }
  if (is_gif(data, size)) {
    if (const char* why = gif_truncation(data, size)) fail("image '%s': %s", nm, why);
  }
  const char* format = format_of(data, size);
  if (is_png(data, size)) {
    // The pixel limit first, from IHDR alone (stb_image refuses some large sizes itself with a bare
    // "too large"), then the chunk structure.
    if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
      const uint32_t pw = rd32(data + 16, false), ph = rd32(data + 20, false);
      const uint64_t pixels = uint64_t(pw) * ph;
      if (opt.max_pixels > 0 && pixels > uint64_t(opt.max_pixels))
        fail("image '%s' is %u x %u = %llu pixels, over the limit of %lld pixels", nm, pw, ph,
             (unsigned long long)pixels, (long long)opt.max_pixels);
    }
    if (const char* why = png_structure_error(data, size)) fail("image '%s': %s", nm, why);
  }
  int& w = ch.w;
  int& h = ch.h;
  int& comp = ch.comp;
  if (!format)
    fail("image '%s': not a readable JPEG, PNG, BMP, GIF or PNM file (its first bytes are none of theirs)", nm);
  if (!format_info(format, data, len, &w, &h, &comp))
    fail("image '%s': unreadable %s header: %s", nm, format, stb_reason(format).c_str());
  if (w <= 0 || h <= 0 || comp < 1 || comp > 4)
    fail("image '%s': invalid header (%d x %d, %d channels)", nm, w, h, comp);
  const int64_t pixels = int64_t(w) * h;
  if (opt.max_pixels > 0 && pixels > opt.max_pixels)
    fail("image '%s' is %d x %d = %lld pixels, over the limit of %lld pixels", nm, w, h,
         (long long)pixels, (long long)opt.max_pixels);
  return ch;
}

}  // namespace

ImageInfo probe_image(const uint8_t* data, size_t size, const ImageLoadOptions& opt, const std::string& name) {
  const CheckedHeader ch = check_image_header(data, size, opt, name);
  return {ch.w, ch.h};
}

Image load_image_from_memory(const uint8_t* data, size_t size, const ImageLoadOptions& opt,
                             const std::string& name) {
  const char* nm = name.c_str();
  const CheckedHeader ch = check_image_header(data, size, opt, name);
  const int w = ch.w, h = ch.h, comp = ch.comp, len = ch.len;
  const bool jpeg = ch.jpeg, is_pnm_file = ch.is_pnm;
  const PnmHeader& pnm = ch.pnm;

  const bool wide = stbi_is_16_bit_from_memory(data, len) != 0;
  int dw = 0, dh = 0, dc = 0;
  std::unique_ptr<void, StbiFree> buf(
      wide ? static_cast<void*>(stbi_load_16_from_memory(data, len, &dw, &dh, &dc, comp))
           : static_cast<void*>(stbi_load_from_memory(data, len, &dw, &dh, &dc, comp)));
  if (!buf) fail("image '%s': corrupt or truncated image data: %s", nm, stb_reason(format_of(data, size)).c_str());
  if (dw != w || dh != h)
    fail("image '%s': header says %d x %d but the data decodes to %d x %d", nm, w, h, dw, dh);

  if (is_pnm_file) {
    const size_t count = size_t(w) * h * comp;
    const unsigned maxval = unsigned(pnm.maxval);
    if (wide) {
      uint16_t* v = static_cast<uint16_t*>(buf.get());
      const uint8_t* raw = data + pnm.data_offset;
      // Samples are big-endian in the file; take them from there whatever order the decoder left.
      for (size_t i = 0; i < count; ++i) {
        const unsigned s16 = std::min<unsigned>(unsigned(raw[2 * i]) << 8 | raw[2 * i + 1], maxval);
        v[i] = uint16_t((uint64_t(s16) * 65535u + maxval / 2) / maxval);
      }
    } else if (maxval != 255) {
      uint8_t* v = static_cast<uint8_t*>(buf.get());
      for (size_t i = 0; i < count; ++i) v[i] = uint8_t((std::min<unsigned>(v[i], maxval) * 255u + maxval / 2) / maxval);
    }
  }

  Image img(w, h);
  if (wide) to_rgb(static_cast<const uint16_t*>(buf.get()), comp, img);
  else to_rgb(static_cast<const uint8_t*>(buf.get()), comp, img);
  if (jpeg && opt.apply_exif_orientation) {
    int o = jpeg_exif_orientation(data, size);
    if (o != 1) img = apply_exif_orientation(img, o);
  }
  return img;
}

std::vector<uint8_t> read_image_file(const std::string& path, const ImageLoadOptions& opt) {
  const char* nm = path.c_str();
  struct stat st;
  if (::stat(nm, &st) != 0) fail("cannot open image '%s': %s", nm, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("cannot read image '%s': not a regular file", nm);
  if (st.st_size == 0) fail("image '%s' is empty (0 bytes)", nm);
  if (opt.max_file_bytes > 0 && st.st_size > opt.max_file_bytes)
    fail("image '%s' is %lld bytes, over the file size limit of %lld bytes", nm, (long long)st.st_size,
         (long long)opt.max_file_bytes);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(nm, "rb"), std::fclose);
  if (!f) fail("cannot open image '%s': %s", nm, std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    fail("cannot read image '%s': short read", nm);
  return bytes;
}

Image load_image(const std::string& path, const ImageLoadOptions& opt) {
  const std::vector<uint8_t> bytes = read_image_file(path, opt);
  return load_image_from_memory(bytes.data(), bytes.size(), opt, path);
}

}  // namespace edgevlm
