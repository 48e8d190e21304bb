// Image input: decodes JPEG, PNG, BMP, GIF (first frame) and PNM (through stb_image) into 8-bit RGB.
//
// - grey is replicated into R, G, B; 16-bit samples are rounded to 8 bits (v * 255 / 65535, nearest);
// - alpha is composited on white: out = c·a + 255·(1 − a), computed at the source bit depth;
// - JPEG EXIF orientation (APP1 "Exif", IFD0 tag 0x0112) is applied, as PIL's
//   ImageOps.exif_transpose does, so width/height are those of the upright image;
// - limits are checked before any pixel is decoded (file size first, then the header's
//   width × height), each with an error that names the file and both numbers;
// - a corrupt or truncated file throws edgevlm::Error naming the file; it never crashes. Before
//   stb_image (Debian's 2.27) sees the bytes, JPEG marker structure (incl. Huffman table sizes, which
//   2.27 overruns otherwise), PNM headers and data length, BMP data length and the first GIF frame's
//   extent are checked, so a truncated file is an error rather than a partly blank image (a prefix
//   decodes only when it already holds the whole first image, e.g. a PNG missing IEND).
// - PNM means binary PGM/PPM (P5/P6), 8 or 16 bits; maxval other than 255/65535 is rescaled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace edgevlm {

// 8-bit RGB, rows top to bottom, pixels interleaved R,G,B (HWC), no row padding.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3

  Image() = default;
  Image(int w, int h);  // zero-filled (black)
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  uint8_t* at(int x, int y) { return row(y) + static_cast<size_t>(x) * 3; }
  const uint8_t* at(int x, int y) const { return row(y) + static_cast<size_t>(x) * 3; }
  bool empty() const { return width == 0 || height == 0; }
};

struct ImageLoadOptions {
  int64_t max_pixels = 50'000'000;          // width × height of the stored image
  int64_t max_file_bytes = 64ll << 20;      // size of the encoded file (or memory buffer)
  bool apply_exif_orientation = true;       // JPEG only; other formats carry no orientation here
};

// Throws edgevlm::Error: missing/unreadable file, empty file, over a limit, unknown format,
// corrupt or truncated data. `name` is what error messages call the buffer.
Image load_image(const std::string& path, const ImageLoadOptions& opt = {});
Image load_image_from_memory(const uint8_t* data, size_t size, const ImageLoadOptions& opt = {},
                             const std::string& name = "<memory>");

// The file's bytes, with load_image's checks (regular file, not empty, under max_file_bytes).
std::vector<uint8_t> read_image_file(const std::string& path, const ImageLoadOptions& opt = {});

// Size of the stored image, from the header only.
struct ImageInfo {
  int width = 0, height = 0;
};
// Every check load_image_from_memory makes before decoding pixels (format, structure, header,
// limits), without decoding: a cheap way to refuse a bad image at once. Throws edgevlm::Error with
// the same message the decode would give.
ImageInfo probe_image(const uint8_t* data, size_t size, const ImageLoadOptions& opt = {},
                      const std::string& name = "<memory>");

// The EXIF orientation (1..8) of a JPEG buffer; 1 when the buffer is not a JPEG, has no Exif
// APP1 segment, or the tag is missing or malformed. Never reads outside [data, data+size).
int jpeg_exif_orientation(const uint8_t* data, size_t size);

// Applies an EXIF orientation (1..8) so that the result is upright:
// 2 mirror left-right, 3 rotate 180°, 4 mirror top-bottom, 5 transpose, 6 rotate 90° clockwise,
// 7 transverse, 8 rotate 90° counter-clockwise. Other values return the image unchanged.
Image apply_exif_orientation(const Image& img, int orientation);

}  // namespace edgevlm
