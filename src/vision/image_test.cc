#include "vision/image.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.h"

// A private copy of the writer, used only to make test images (static: no symbol clash).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "stb_image_write.h"
#pragma GCC diagnostic pop

namespace edgevlm {
namespace {

const std::string kFix = std::string(EDGEVLM_SOURCE_DIR) + "/tests/fixtures/images/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("edgevlm_image_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_file(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void append_cb(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

std::vector<uint8_t> encode_png(const Image& img) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(append_cb, &out, img.width, img.height, 3, img.pixels.data(), img.width * 3);
  return out;
}

std::vector<uint8_t> encode_jpg(const Image& img, int quality = 95) {
  std::vector<uint8_t> out;
  stbi_write_jpg_to_func(append_cb, &out, img.width, img.height, 3, img.pixels.data(), quality);
  return out;
}

// Asymmetric test pattern: every pixel distinct, so any wrong transform shows.
Image pattern(int w, int h) {
  Image im(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = im.at(x, y);
      p[0] = uint8_t(x * 255 / std::max(1, w - 1));
      p[1] = uint8_t(y * 255 / std::max(1, h - 1));
      p[2] = uint8_t((x * 7 + y * 13) & 255);
    }
  return im;
}

int max_abs_diff(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size()) return 256;
  int m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

// Exif APP1 segment carrying only IFD0 with the orientation tag.
std::vector<uint8_t> exif_app1(int orientation, bool little_endian, uint16_t type = 3) {
  std::vector<uint8_t> t;
  auto p16 = [&](uint16_t v) {
    if (little_endian) { t.push_back(v & 255); t.push_back(v >> 8); }
    else { t.push_back(v >> 8); t.push_back(v & 255); }
  };
  auto p32 = [&](uint32_t v) {
    if (little_endian) { p16(v & 0xFFFF); p16(v >> 16); }
    else { p16(v >> 16); p16(v & 0xFFFF); }
  };
  t.push_back(little_endian ? 'I' : 'M');
  t.push_back(little_endian ? 'I' : 'M');
  p16(42);
  p32(8);
  p16(2);  // two entries: an unrelated tag first, so the parser must walk the IFD
  p16(0x010F); p16(2); p32(4); t.insert(t.end(), {'a', 'b', 'c', 0});
  p16(0x0112); p16(type);
  p32(1);
  if (type == 3) { p16(uint16_t(orientation)); p16(0); }
  else p32(uint32_t(orientation));
  p32(0);
  std::vector<uint8_t> seg = {0xFF, 0xE1};
  size_t len = 2 + 6 + t.size();
  seg.push_back(uint8_t(len >> 8));
  seg.push_back(uint8_t(len & 255));
  seg.insert(seg.end(), {'E', 'x', 'i', 'f', 0, 0});
  seg.insert(seg.end(), t.begin(), t.end());
  return seg;
}

std::vector<uint8_t> with_segment_after_soi(const std::vector<uint8_t>& jpg, const std::vector<uint8_t>& seg) {
  std::vector<uint8_t> out(jpg.begin(), jpg.begin() + 2);
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), jpg.begin() + 2, jpg.end());
  return out;
}

TEST(ImageLoad, FormatsAndPixelLayoutsMatchPilReference) {
  // Expected images were made by scripts/make_resize_reference.py (PIL); lossless formats are exact.
  const char* lossless[] = {"fmt_rgb.png",      "fmt_rgb.bmp",    "fmt_rgb.ppm",   "fmt_grey.pgm",
                            "fmt_grey.png",     "fmt_la.png",     "fmt_rgba.png",  "fmt_pal_trns.png",
                            "fmt_grey16.png",   "fmt_grey16.pgm", "fmt_rgb16.png",  "fmt_rgba16.png", "fmt_la16.png",
                            "fmt_anim.gif"};
  for (const char* f : lossless) {
    SCOPED_TRACE(f);
    Image got = load_image(kFix + f);
    Image want = load_image(kFix + f + ".expected.png");
    EXPECT_EQ(got.width, 12);
    EXPECT_EQ(got.height, 9);
    EXPECT_EQ(max_abs_diff(got, want), 0);
  }
}

TEST(ImageLoad, JpegCloseToLibjpegDecode) {
  // stb_image and libjpeg (PIL) differ in IDCT and chroma upsampling; flat 4×4 blocks keep it small.
  Image got = load_image(kFix + "fmt_rgb.jpg");
  Image want = load_image(kFix + "fmt_rgb.jpg.expected.png");
  ASSERT_EQ(got.width, 48);
  ASSERT_EQ(got.height, 36);
  double sum = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) sum += std::abs(int(got.pixels[i]) - int(want.pixels[i]));
  EXPECT_LT(sum / got.pixels.size(), 3.0);
  EXPECT_LE(max_abs_diff(got, want), 40);
}

TEST(ImageLoad, GifGivesFirstFrame) {
  // Frame 2 is the negative of frame 1; the expected file is frame 1 as PIL reads it.
  Image got = load_image(kFix + "fmt_anim.gif");
  EXPECT_EQ(max_abs_diff(got, load_image(kFix + "fmt_anim.gif.expected.png")), 0);
}

TEST(ImageExif, TransformsMatchPilExifTranspose) {
  Image src = load_image(kFix + "orient_src.png");
  for (int n = 1; n <= 8; ++n) {
    SCOPED_TRACE(n);
    Image want = load_image(kFix + "orient_" + std::to_string(n) + ".png");
    EXPECT_EQ(max_abs_diff(apply_exif_orientation(src, n), want), 0);
  }
}

TEST(ImageExif, PilWrittenJpegIsRotated) {
  // Stored 48×32 with quadrants red|green / blue|yellow, orientation 6 (rotate 90° clockwise).
  const auto bytes = read_bytes(kFix + "exif6.jpg");
  EXPECT_EQ(jpeg_exif_orientation(bytes.data(), bytes.size()), 6);
  Image im = load_image(kFix + "exif6.jpg");
  ASSERT_EQ(im.width, 32);
  ASSERT_EQ(im.height, 48);
  auto near = [&](int x, int y, int r, int g, int b) {
    const uint8_t* p = im.at(x, y);
    return std::abs(p[0] - r) < 12 && std::abs(p[1] - g) < 12 && std::abs(p[2] - b) < 12;
  };
  EXPECT_TRUE(near(8, 12, 30, 30, 210));    // top-left: was bottom-left (blue)
  EXPECT_TRUE(near(24, 12, 220, 30, 30));   // top-right: was top-left (red)
  EXPECT_TRUE(near(8, 36, 230, 230, 40));   // bottom-left: was bottom-right (yellow)
  EXPECT_TRUE(near(24, 36, 30, 200, 30));   // bottom-right: was top-right (green)
  ImageLoadOptions raw;
  raw.apply_exif_orientation = false;
  Image stored = load_image(kFix + "exif6.jpg", raw);
  EXPECT_EQ(stored.width, 48);
  EXPECT_EQ(stored.height, 32);
}

TEST(ImageExif, EveryOrientationBothByteOrdersAndTypes) {
  const auto jpg = encode_jpg(pattern(24, 16));
  ImageLoadOptions raw;
  raw.apply_exif_orientation = false;
  const Image stored = load_image_from_memory(jpg.data(), jpg.size(), raw);
  for (bool le : {true, false})
    for (uint16_t type : {uint16_t(3), uint16_t(4)})
      for (int n = 1; n <= 8; ++n) {
        SCOPED_TRACE(testing::Message() << "le=" << le << " type=" << type << " n=" << n);
        const auto tagged = with_segment_after_soi(jpg, exif_app1(n, le, type));
        EXPECT_EQ(jpeg_exif_orientation(tagged.data(), tagged.size()), n);
        Image im = load_image_from_memory(tagged.data(), tagged.size());
        EXPECT_EQ(im.width, n >= 5 ? 16 : 24);
        EXPECT_EQ(max_abs_diff(im, apply_exif_orientation(stored, n)), 0);
      }
}

TEST(ImageExif, MalformedExifIsIgnoredNotFatal) {
  const auto jpg = encode_jpg(pattern(8, 8));
  auto seg = exif_app1(6, true);
  // Orientation value out of range.
  auto bad = exif_app1(9, true);
  auto t = with_segment_after_soi(jpg, bad);
  EXPECT_EQ(jpeg_exif_orientation(t.data(), t.size()), 1);
  // IFD offset pointing past the segment.
  auto off = seg;
  off[10 + 4] = 0xF0;
  t = with_segment_after_soi(jpg, off);
  EXPECT_EQ(jpeg_exif_orientation(t.data(), t.size()), 1);
  EXPECT_NO_THROW(load_image_from_memory(t.data(), t.size()));
  // Entry count far larger than the segment.
  auto cnt = seg;
  cnt[10 + 8] = 0xFF;
  cnt[10 + 9] = 0xFF;
  t = with_segment_after_soi(jpg, cnt);
  EXPECT_EQ(jpeg_exif_orientation(t.data(), t.size()), 6);  // entries inside the segment still count
  // Segment length that cuts the orientation entry off: the walk must stop at the segment's end.
  auto cut = seg;
  cut[3] = uint8_t(cut[3] - 16);
  t = with_segment_after_soi(jpg, cut);
  EXPECT_EQ(jpeg_exif_orientation(t.data(), t.size()), 1);
  // Segment length running past the end of the buffer: every prefix must be safe.
  t = with_segment_after_soi(jpg, seg);
  for (size_t n = 0; n < 60 && n < t.size(); ++n) EXPECT_LE(jpeg_exif_orientation(t.data(), n), 8);
  // Not a JPEG at all.
  const uint8_t png_sig[] = {0x89, 'P', 'N', 'G'};
  EXPECT_EQ(jpeg_exif_orientation(png_sig, sizeof png_sig), 1);
  EXPECT_EQ(jpeg_exif_orientation(nullptr, 0), 1);
}

TEST(ImageLoad, MissingFileNamesThePath) {
  const std::string p = kFix + "does_not_exist.png";
  std::string e = error_of([&] { load_image(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;
  e = error_of([&] { load_image(kFix); });  // a directory
  EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
}

TEST(ImageLoad, ZeroByteFile) {
  const std::string p = temp_path("empty.jpg");
  write_file(p, {});
  std::string e = error_of([&] { load_image(p); });
  EXPECT_NE(e.find("empty"), std::string::npos) << e;
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(error_of([] { load_image_from_memory(nullptr, 0); }), "");
}

TEST(ImageLoad, TruncatedJpegIsAnErrorNamingTheFile) {
  const auto jpg = read_bytes(kFix + "fmt_rgb.jpg");
  ASSERT_GT(jpg.size(), 600u);
  const std::string p = temp_path("truncated.jpg");
  for (size_t keep : {size_t(2), size_t(20), size_t(200), jpg.size() / 2, jpg.size() - 2}) {
    SCOPED_TRACE(keep);
    write_file(p, std::vector<uint8_t>(jpg.begin(), jpg.begin() + keep));
    std::string e = error_of([&] { load_image(p); });
    EXPECT_NE(e, "");
    EXPECT_NE(e.find(p), std::string::npos) << e;
  }
}

TEST(ImageLoad, TruncatedFilesFailOrDecodeCompletely) {
  // Every prefix of every fixture either throws edgevlm::Error or decodes to exactly the full image
  // (PNG without its IEND chunk, GIF after its first frame): never a silently blank part.
  for (const char* f : {"fmt_rgb.png", "fmt_rgb.bmp", "fmt_rgb.ppm", "fmt_grey16.pgm", "fmt_anim.gif",
                        "fmt_rgb16.png", "fmt_pal_trns.png", "fmt_rgb.jpg", "exif6.jpg"}) {
    SCOPED_TRACE(f);
    const auto b = read_bytes(kFix + f);
    const Image full = load_image_from_memory(b.data(), b.size());
    int decoded = 0;
    for (size_t keep = 0; keep < b.size(); ++keep) {
      try {
        Image im = load_image_from_memory(b.data(), keep, {}, f);
        ASSERT_EQ(max_abs_diff(im, full), 0) << "prefix of " << keep << " bytes";
        ++decoded;
      } catch (const Error& e) {
        ASSERT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(decoded, int(b.size()) / 2 + 8);
  }
}

TEST(ImageLoad, PnmHeaderDataLengthAndMaxval) {
  auto load = [](const std::string& s) {
    return load_image_from_memory(reinterpret_cast<const uint8_t*>(s.data()), s.size(), {}, "x.pgm");
  };
  // maxval 15 is scaled to 0..255 (round(v·255/15)); comments are allowed between tokens.
  Image im = load(std::string("P5 # made by hand\n3 1\n15\n") + char(0) + char(7) + char(15));
  ASSERT_EQ(im.width, 3);
  EXPECT_EQ(im.pixels, (std::vector<uint8_t>{0, 0, 0, 119, 119, 119, 255, 255, 255}));
  // Short pixel data is an error (stb_image alone would return uninitialised memory).
  std::string e = error_of([&] { load("P6\n4 4\n255\n" + std::string(47, 'a')); });
  EXPECT_NE(e.find("truncated PNM"), std::string::npos) << e;
  EXPECT_NO_THROW(load("P6\n4 4\n255\n" + std::string(48, 'a')));
  // Numbers that would overflow the decoder's int, and maxval 0, are refused.
  EXPECT_NE(error_of([&] { load("P5\n99999999999999999999 1\n255\n" + std::string(64, 'a')); }).find("width"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load("P5\n1 1\n0\n" + std::string(1, 'a')); }).find("maximum value"), std::string::npos);
}

TEST(ImageLoad, OnePixelImage) {
  Image one(1, 1);
  one.pixels = {10, 200, 30};
  const auto png = encode_png(one);
  Image im = load_image_from_memory(png.data(), png.size());
  ASSERT_EQ(im.width, 1);
  ASSERT_EQ(im.height, 1);
  EXPECT_EQ(im.pixels, one.pixels);
}

TEST(ImageLoad, VeryWideImage) {
  Image wide = pattern(20000, 50);
  const std::string p = temp_path("wide.png");
  write_file(p, encode_png(wide));
  Image im = load_image(p);
  EXPECT_EQ(im.width, 20000);
  EXPECT_EQ(im.height, 50);
  EXPECT_EQ(max_abs_diff(im, wide), 0);
}

TEST(ImageLoad, PixelLimitCheckedBeforeDecoding) {
  // A PNG whose header claims 8000×8000 (64 MP) but has no pixel data: rejected by the header check.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                              0, 0, 0x1F, 0x40, 0, 0, 0x1F, 0x40, 8, 2, 0, 0, 0, 0, 0, 0, 0};
  std::string e = error_of([&] { load_image_from_memory(png.data(), png.size(), {}, "huge.png"); });
  EXPECT_NE(e.find("8000 x 8000"), std::string::npos) << e;
  EXPECT_NE(e.find("50000000"), std::string::npos) << e;
  EXPECT_NE(e.find("huge.png"), std::string::npos) << e;

  ImageLoadOptions small;
  small.max_pixels = 100;
  const auto ok = encode_png(pattern(10, 10));
  EXPECT_NO_THROW(load_image_from_memory(ok.data(), ok.size(), small));
  const auto big = encode_png(pattern(11, 10));
  e = error_of([&] { load_image_from_memory(big.data(), big.size(), small); });
  EXPECT_NE(e.find("110 pixels"), std::string::npos) << e;
}

// A PNG from its chunks (stb_image does not check CRCs: they are left 0).
std::vector<uint8_t> png_of(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& chunks) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto be32 = [&](uint32_t v) { for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s)); };
  for (const auto& [type, data] : chunks) {
    be32(uint32_t(data.size()));
    b.insert(b.end(), type.begin(), type.end());
    b.insert(b.end(), data.begin(), data.end());
    be32(0);
  }
  return b;
}
std::vector<uint8_t> ihdr(uint32_t w, uint32_t h) {
  return {uint8_t(w >> 24), uint8_t(w >> 16), uint8_t(w >> 8), uint8_t(w), uint8_t(h >> 24), uint8_t(h >> 16),
          uint8_t(h >> 8), uint8_t(h), 8, 2, 0, 0, 0};
}

TEST(ImageLoad, RefusalsNameTheRealReason) {
  auto err = [](const std::vector<uint8_t>& b, const ImageLoadOptions& opt = {}) {
    return error_of([&] { load_image_from_memory(b.data(), b.size(), opt, "x.png"); });
  };
  // A header of 100000 x 100000: the pixel limit, not stb_image's "unknown image type".
  const auto huge = png_of({{"IHDR", ihdr(100000, 100000)}, {"IDAT", {}}, {"IEND", {}}});
  std::string e = err(huge);
  EXPECT_NE(e.find("100000 x 100000"), std::string::npos) << e;
  EXPECT_NE(e.find("over the limit"), std::string::npos) << e;
  EXPECT_EQ(e.find("unknown image type"), std::string::npos) << e;
  e = error_of([&] { probe_image(huge.data(), huge.size(), {}, "x.png"); });
  EXPECT_NE(e.find("100000 x 100000"), std::string::npos) << e;
  // With no pixel limit, stb_image's own refusal is said in words.
  ImageLoadOptions unlimited;
  unlimited.max_pixels = 0;
  e = err(huge, unlimited);
  EXPECT_NE(e.find("too large to decode"), std::string::npos) << e;
  EXPECT_NE(e.find("PNG"), std::string::npos) << e;
  // A zero-length IDAT as the file's last chunk (no IEND): said to be truncated, not an empty reason.
  e = err(png_of({{"IHDR", ihdr(4, 4)}, {"IDAT", {}}}));
  EXPECT_NE(e.find("truncated PNG (ends before the IEND chunk)"), std::string::npos) << e;
  EXPECT_EQ(e.find("()"), std::string::npos) << e;
  // A zero-length IDAT, and nothing else of image data.
  e = err(png_of({{"IHDR", ihdr(4, 4)}, {"IDAT", {}}, {"IEND", {}}}));
  EXPECT_NE(e.find("no image data"), std::string::npos) << e;
  // A chunk cut short, and a paletted PNG without its palette.
  auto cut = png_of({{"IHDR", ihdr(4, 4)}, {"IDAT", std::vector<uint8_t>(40, 1)}, {"IEND", {}}});
  cut.resize(cut.size() - 30);
  e = err(cut);
  EXPECT_NE(e.find("ends inside its IDAT chunk"), std::string::npos) << e;
  auto pal = ihdr(4, 4);
  pal[9] = 3;
  e = err(png_of({{"IHDR", pal}, {"IDAT", std::vector<uint8_t>(8, 0)}, {"IEND", {}}}));
  EXPECT_NE(e.find("corrupt PNG (no PLTE)"), std::string::npos) << e;
  EXPECT_EQ(e.find("unknown image type"), std::string::npos) << e;
  // A truncated JPEG, in its header and in its entropy-coded data.
  const auto jpg = read_bytes(kFix + "fmt_rgb.jpg");
  for (size_t keep : {size_t(30), jpg.size() - 2}) {
    const std::vector<uint8_t> t(jpg.begin(), jpg.begin() + keep);
    e = err(t);
    EXPECT_NE(e.find("truncated JPEG"), std::string::npos) << e;
  }
  // Every refusal of the mutated fixtures has a reason after the name (no empty parentheses, no
  // bare "unknown image type" for a file whose signature is known).
  std::mt19937 rng(7);
  for (const char* f : {"fmt_rgb.png", "fmt_pal_trns.png", "fmt_rgb.jpg", "fmt_rgb.bmp", "fmt_anim.gif"}) {
    const auto b = read_bytes(kFix + f);
    for (int i = 0; i < 300; ++i) {
      auto m = b;
      for (int k = 0; k < 3; ++k) m[8 + rng() % (m.size() - 8)] = uint8_t(rng());
      if (rng() % 2) m.resize(8 + rng() % (m.size() - 8));
      e = err(m);
      EXPECT_EQ(e.find("()"), std::string::npos) << f << ": " << e;
      EXPECT_EQ(e.find("unknown image type"), std::string::npos) << f << ": " << e;
      if (!e.empty()) EXPECT_GT(e.size(), e.find("x.png") + 12) << e;
    }
  }
}

TEST(ImageLoad, FileSizeLimit) {
  ImageLoadOptions opt;
  opt.max_file_bytes = 100;
  std::string e = error_of([&] { load_image(kFix + "fmt_rgb.jpg", opt); });
  EXPECT_NE(e.find("file size limit of 100 bytes"), std::string::npos) << e;
  opt.max_file_bytes = 1 << 20;
  EXPECT_NO_THROW(load_image(kFix + "fmt_rgb.jpg", opt));
}

TEST(ImageLoad, GarbageIsRejected) {
  const std::string text = "this is not an image at all, just some words";
  std::string e = error_of([&] {
    load_image_from_memory(reinterpret_cast<const uint8_t*>(text.data()), text.size(), {}, "notes.txt");
  });
  EXPECT_NE(e.find("notes.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("JPEG, PNG"), std::string::npos) << e;
}

TEST(ImageLoad, OversizedHuffmanTableIsRejectedBeforeStb) {
  // stb_image 2.27 overruns its tables on a DHT declaring more than 256 codes (found by the fuzz test
  // under ASan); the structure check must refuse it with a clear error instead.
  auto jpg = encode_jpg(pattern(16, 16));
  size_t dht = 0;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) { dht = i; break; }
  ASSERT_GT(dht, 0u);
  for (int k = 0; k < 16; ++k) jpg[dht + 5 + k] = 200;  // 16 × 200 codes
  std::string e = error_of([&] { load_image_from_memory(jpg.data(), jpg.size(), {}, "dht.jpg"); });
  EXPECT_NE(e.find("Huffman"), std::string::npos) << e;
  EXPECT_NE(e.find("dht.jpg"), std::string::npos) << e;
  // Leading 0xFF fill before SOI still counts as a JPEG for stb, so it is checked too.
  jpg.insert(jpg.begin(), 0xFF);
  EXPECT_NE(error_of([&] { load_image_from_memory(jpg.data(), jpg.size()); }).find("Huffman"), std::string::npos);
}

TEST(ImageLoad, ScanWithUndefinedHuffmanTableIsRejectedBeforeStb) {
  // stb_image 2.27 decodes a scan with a Huffman table no DHT defined, indexing uninitialized memory
  // (found by fuzz_image; fuzz/regressions/image/scan-uses-undefined-huffman-table.jpg). The scan
  // header's table ids must name defined tables.
  auto jpg = encode_jpg(pattern(16, 16));
  size_t sos = 0;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) { sos = i; break; }
  ASSERT_GT(sos, 0u);
  ASSERT_NO_THROW(load_image_from_memory(jpg.data(), jpg.size()));
  auto bad_ac = jpg;
  bad_ac[sos + 6] = (bad_ac[sos + 6] & 0xF0) | 2;  // first component: AC table 2, never defined
  std::string e = error_of([&] { load_image_from_memory(bad_ac.data(), bad_ac.size(), {}, "sos.jpg"); });
  EXPECT_NE(e.find("AC Huffman table no DHT segment defined"), std::string::npos) << e;
  EXPECT_NE(e.find("sos.jpg"), std::string::npos) << e;
  auto bad_dc = jpg;
  bad_dc[sos + 6] = (bad_dc[sos + 6] & 0x0F) | 0x30;  // DC table 3
  e = error_of([&] { load_image_from_memory(bad_dc.data(), bad_dc.size()); });
  EXPECT_NE(e.find("DC Huffman table"), std::string::npos) << e;
  // A sequential frame decodes with the AC table even when the scan header says Se = 0
  // (fuzz/regressions/image/sequential-scan-se0-undefined-ac-table.jpg).
  auto se0 = bad_ac;
  const size_t ns = se0[sos + 4];
  se0[sos + 6 + 2 * ns] = 0;  // Se
  e = error_of([&] { load_image_from_memory(se0.data(), se0.size()); });
  EXPECT_NE(e.find("AC Huffman table no DHT segment defined"), std::string::npos) << e;
}

// Fuzz-style: mutated bytes of every fixture format must decode or throw edgevlm::Error, never crash.
// Longer campaigns: EDGEVLM_FUZZ_ITERATIONS / EDGEVLM_FUZZ_SEED, built with -DEDGEVLM_SANITIZE=ON.
TEST(ImageFuzz, MutatedBytesNeverCrash) {
  std::vector<std::vector<uint8_t>> seeds;
  for (const char* f : {"fmt_rgb.jpg", "exif6.jpg", "fmt_rgb.png", "fmt_rgba16.png", "fmt_pal_trns.png",
                        "fmt_rgb.bmp", "fmt_anim.gif", "fmt_rgb.ppm", "fmt_grey.pgm", "fmt_la.png"})
    seeds.push_back(read_bytes(kFix + f));
  {
    const auto jpg = encode_jpg(pattern(40, 24));
    seeds.push_back(with_segment_after_soi(jpg, exif_app1(6, false)));
  }
  ImageLoadOptions opt;
  opt.max_pixels = 1 << 20;  // keeps hostile headers from costing time, as a deployment would
  uint64_t seed = 12345;
  if (const char* e = std::getenv("EDGEVLM_FUZZ_SEED")) seed = std::strtoull(e, nullptr, 10);
  std::mt19937_64 rng(seed);
  int decoded = 0, rejected = 0;
  int iterations = 4000;  // about a second; EDGEVLM_FUZZ_ITERATIONS raises it for sanitizer runs
  if (const char* e = std::getenv("EDGEVLM_FUZZ_ITERATIONS")) iterations = std::max(1, std::atoi(e));
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> b = seeds[rng() % seeds.size()];
    const int kind = int(rng() % 4);
    const int edits = 1 + int(rng() % 8);
    for (int k = 0; k < edits && !b.empty(); ++k) {
      const size_t pos = rng() % b.size();
      switch (kind) {
        case 0: b[pos] ^= uint8_t(1u << (rng() % 8)); break;                 // bit flip
        case 1: b[pos] = uint8_t(rng()); break;                               // byte set
        case 2: b.insert(b.begin() + long(pos), uint8_t(rng())); break;       // insertion
        default: b.resize(pos); break;                                        // truncation
      }
    }
    // Header fields are where decoders go wrong: bias edits to the first 64 bytes half the time.
    if (rng() % 2 && b.size() > 8) b[rng() % std::min<size_t>(64, b.size())] = uint8_t(rng());
    try {
      Image im = load_image_from_memory(b.data(), b.size(), opt, "fuzz");
      ASSERT_EQ(im.pixels.size(), size_t(im.width) * im.height * 3);
      ASSERT_LE(int64_t(im.width) * im.height, opt.max_pixels);
      ++decoded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_EQ(decoded + rejected, iterations);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace edgevlm
