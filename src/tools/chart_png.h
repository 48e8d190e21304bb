// Grouped bar charts drawn into an RGB bitmap and written as PNG (stb_image_write), with a tiny
// built-in 3×5 bitmap font for titles, labels and values: what `edgevlm bench --paper-table` draws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgevlm {

struct BarChart {
  std::string title;
  std::vector<std::string> groups;          // along the x axis (e.g. image resolutions)
  std::vector<std::string> series;          // one bar per series in each group, shown in the legend
  std::vector<std::vector<double>> values;  // values[series][group]; not finite or ≤ 0: no bar
};

struct ChartRect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) × [y0, y1), pixels
};

struct ChartImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;     // width × height × 3, rows top to bottom
  std::vector<ChartRect> bars;  // panel-major, then group, then series (empty rect: no bar)
};

inline constexpr uint8_t kChartBackground = 255;  // white

// The panels stacked top to bottom, each panel_height pixels high, every bar scaled to its
// panel's largest value. Throws edgevlm::Error when a panel's values do not match its series
// and groups, or the size is too small to draw.
ChartImage draw_bar_charts(const std::vector<BarChart>& panels, int width, int panel_height);

// PNG bytes of the image; write_png writes them to path (throws edgevlm::Error naming it).
std::vector<uint8_t> encode_png(const ChartImage& img);
void write_png(const std::string& path, const ChartImage& img);

}  // namespace edgevlm
