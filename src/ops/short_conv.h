// The causal depthwise convolution of LFM2's short-convolution blocks (ggml_ssm_conv with the
// state prepended): channel c at position t is
//   y[t][c] = Σ_{j<K} w[c][j] · x[t − (K−1) + j][c],
// where positions before the first new one come from `state`, the last K−1 inputs of the previous
// call (zeros at the start of a sequence). Afterwards state holds the last K−1 inputs seen.
#pragma once

#include <cstdint>

namespace edgevlm {

// x, y: n × dim (row-major, y may not alias x); w: dim × kernel (each channel's taps contiguous,
// as GGUF stores shortconv.conv.weight with ne = [kernel, dim]); state: (kernel − 1) × dim,
// oldest row first, updated in place.
void short_conv_causal(const float* x, int64_t n, int64_t dim, const float* w, int kernel, float* state,
                       float* y);

}  // namespace edgevlm
