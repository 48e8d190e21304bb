// `edgevlm bench --vit-sweep / --prefill-sweep / --paper-table` run end to end on the tiny parity
// fixture pair: they finish quickly, print a row per setting, and the paper table's Markdown and
// PNG are written (the PNG decodes to the chart's size).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "vision/image.h"

namespace edgevlm {
namespace {

namespace fs = std::filesystem;

std::string binary() {
  if (const char* b = std::getenv("EDGEVLM_BUILD_DIR")) return std::string(b) + "/edgevlm";
  return (fs::read_symlink("/proc/self/exe").parent_path() / "edgevlm").string();
}

std::string fixture(const std::string& name) {
  return std::string(EDGEVLM_SOURCE_DIR) + "/tests/vision_parity/fixtures/" + name;
}

// stdout of the command; rc gets its exit status.
std::string run(const std::string& args, int* rc) {
  const std::string cmd = binary() + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = p ? pclose(p) : -1;
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

int count(const std::string& s, const std::regex& re) {
  return int(std::distance(std::sregex_iterator(s.begin(), s.end(), re), std::sregex_iterator()));
}

TEST(BenchRuntime, VitSweepRowsPerBatchAndMode) {
  if (!fs::exists(binary())) GTEST_SKIP() << "no " << binary();
  int rc = 0;
  const std::string out = run("bench --vit-sweep --mmproj " + fixture("tiny-mmproj.gguf") + " -t 2 -r 1", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("grid 2x4 + thumbnail = 9 tiles"), std::string::npos) << out;
  for (const char* b : {"| 1 |", "| 2 |", "| 4 |", "| 6 |", "| 9 (all) |"}) {
    SCOPED_TRACE(b);
    EXPECT_EQ(count(out, std::regex(std::regex_replace(b, std::regex(R"([|()])"), R"(\$&)") + " off ")), 1) << out;
    EXPECT_EQ(count(out, std::regex(std::regex_replace(b, std::regex(R"([|()])"), R"(\$&)") + " on")), 1) << out;
  }
}

TEST(BenchRuntime, PrefillSweepOneRowPerChunk) {
  if (!fs::exists(binary())) GTEST_SKIP() << "no " << binary();
  int rc = 0;
  const std::string out =
      run("bench --prefill-sweep -m " + fixture("tiny.gguf") + " --sweep-tokens 200 --chunks 32,128,200 -t 2 -r 1", &rc);
  ASSERT_EQ(rc, 0) << out;
  // chunk, tok/s, runs, peak, before, activations: all numbers, peak ≥ before
  const std::regex row(R"(\| (\d+) \| ([\d.]+) \| [\d ]+ \| ([\d.]+) \| ([\d.]+) \| (-?[\d.]+) \|)");
  int rows = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), row); it != std::sregex_iterator(); ++it, ++rows) {
    EXPECT_GT(std::stod((*it)[2]), 0.0);
    EXPECT_GE(std::stod((*it)[3]), std::stod((*it)[4]));
  }
  EXPECT_EQ(rows, 3) << out;
}

// `bench --gemv`: one row per variant and case (the default first, then other software prefetches,
// the earlier layout, and every other kernel set the CPU has), each with a positive rate.
TEST(BenchRuntime, GemvRowsPerVariant) {
  if (!fs::exists(binary())) GTEST_SKIP() << "no " << binary();
  int rc = 0;
  const std::string out = run("bench --no-limits --gemv --gemv-mb 16 -t 2 -r 1", &rc);
  if (rc != 0 && out.find("this CPU runs others") != std::string::npos) GTEST_SKIP() << "no AVX2";
  ASSERT_EQ(rc, 0) << out;
  const std::regex row(
      R"((q4_0|q8_0) 2560x\d+ x\d+ +([a-z0-9-]+), prefetch (\d+) B(?: every line| \d line/page)?(, scales in groups)?(, 256-bit tiles)? +([\d.]+) +(\d+)% +([\d.]+)x)");
  int rows[2] = {0, 0}, earlier = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), row); it != std::sregex_iterator(); ++it) {
    ++rows[(*it)[1] == "q4_0" ? 0 : 1];
    if ((*it)[4].matched) ++earlier;
    EXPECT_GT(std::stod((*it)[6]), 0.0) << it->str();
    EXPECT_GT(std::stod((*it)[8]), 0.0) << it->str();
  }
  EXPECT_GE(rows[0], 4) << out;
  EXPECT_EQ(rows[0], rows[1]) << out;
  EXPECT_EQ(earlier, 2) << out;
}

TEST(BenchRuntime, PaperTableWritesMarkdownAndChart) {
  if (!fs::exists(binary())) GTEST_SKIP() << "no " << binary();
  const fs::path dir = fs::temp_directory_path() / ("edgevlm_bench_runtime_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string md = (dir / "t.md").string(), png = (dir / "t.png").string();
  int rc = 0;
  const std::string out = run("bench --paper-table --pair tiny=" + fixture("tiny.gguf") + "," +
                                  fixture("tiny-mmproj.gguf") + " --resolutions 40x80,80x80 --rounds 2 -n 3 -t 2 --md " +
                                  md + " --png " + png,
                              &rc);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream f(md);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string table = ss.str();
  EXPECT_NE(table.find("| 40x80 | 1x2 | 3 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 80x80 | 2x2 | 5 |"), std::string::npos) << table;
  const Image img = load_image(png);
  EXPECT_EQ(img.width, 960);
  EXPECT_EQ(img.height, 5 * 220);
  fs::remove_all(dir);
  // A bad pair is an error naming the file, not a crash.
  run("bench --paper-table --pair x=/nonexistent.gguf," + fixture("tiny-mmproj.gguf") + " --resolutions 40x40", &rc);
  EXPECT_EQ(rc, 1);
}

}  // namespace
}  // namespace edgevlm
