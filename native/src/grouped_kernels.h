// The kernels of a grouped 3×3×3 convolution at stride 1 with 4 channels per group, on oneDNN's blocked
// layout: shared by the inference mode (grouped.cc) and the training convolution with its gradients
// (grouped_autograd.cc). ResNeXt-101's first stage convolves 128 channels in 32 groups of 4, which
// oneDNN 2.6 runs at ≈ 10 GFLOP/s on two AVX2 cores (its 8-channel groups at 86, ungrouped ones at
// 110–150), forward and backward alike. Here a register of 8 output channels holds two groups, lanes 0–3
// and 4–7, which are exactly the two 128-bit halves of an AVX2 register; input channel k of each group
// is one in-lane permute of the 8 input channels away (vpermilps broadcasts element k within each half),
// so every tap is 4 permutes and 4 FMAs on whole registers. The weight gradient pairs the same permuted
// inputs with the output gradient's registers.
// Needs AVX2 and FMA (the users export their functions only where the CPU has them).
#pragma once
#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <immintrin.h>
#include "mkldnn_common.h"

namespace stcnet {
namespace grouped {

constexpr int64_t kGroupWidth = 4;  // channels per group
constexpr int64_t kLanes = 8;       // output channels per register: two groups
constexpr int64_t kTaps = 27;

// Dense weights C×4×3×3×3 packed [C/8][27 taps][4 k][8 lanes]: lane l of register r is output channel
// 8r + l, and k its group's k-th input channel.
inline at::Tensor packWeights(const at::Tensor& weight) {
  const int64_t channels = weight.size(0);
  return weight.contiguous().view({channels / kLanes, kLanes, kGroupWidth, kTaps}).permute({0, 3, 2, 1}).contiguous();
}

// The weights of the input gradient, which is the convolution of the output gradient with each group's
// 4×4 weights transposed and their taps flipped.
inline at::Tensor transposedWeights(const at::Tensor& weight) {
  const int64_t channels = weight.size(0);
  return weight.contiguous().view({channels / kGroupWidth, kGroupWidth, kGroupWidth, 3, 3, 3}).transpose(1, 2).flip({3, 4, 5}).reshape(
      {channels, kGroupWidth, 3, 3, 3});
}

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Adds the 4 input channels k of each group at tap `k` (weights [4 k][8 lanes]) to acc[k]: four
// independent chains, so that the FMAs do not wait on each other's latency.
inline void addTap(const float* input, const float* k, __m256* acc) {
  const __m256 v = _mm256_loadu_ps(input);
  acc[0] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x00), _mm256_loadu_ps(k), acc[0]);
  acc[1] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x55), _mm256_loadu_ps(k + kLanes), acc[1]);
  acc[2] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xaa), _mm256_loadu_ps(k + 2 * kLanes), acc[2]);
  acc[3] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xff), _mm256_loadu_ps(k + 3 * kLanes), acc[3]);
}

// The outputs of one row (n, z, y) for 8 output channels from `channel`, over x in [0, W), two
// positions at a time (eight accumulator chains in all).
// w: [27 taps][4 inputs k][8 lanes]; out lane l takes input channel (l / 4)·4 + k of its register.
inline void convolveRow(const Blocked& in, const Blocked& out, const float* w, const float* bias, int64_t n, int64_t channel, int64_t z, int64_t y,
                        bool relu) {
  const float* source = in.origin(n, channel);
  float* target = out.origin(n, channel) + (z * out.height + y) * out.width * out.block;
  const int64_t rowStride = in.width * in.block, planeStride = in.height * rowStride;
  const __m256 shift = bias ? _mm256_loadu_ps(bias + channel) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t x = 0; x < in.width; x += 2) {
    const bool pair = x + 1 < in.width;
    __m256 a[4] = {shift, zero, zero, zero}, b[4] = {shift, zero, zero, zero};
    for (int64_t dz = 0; dz < 3; dz++) {
      const int64_t sz = z + dz - 1;
      if (sz < 0 || sz >= in.depth) continue;
      for (int64_t dy = 0; dy < 3; dy++) {
        const int64_t sy = y + dy - 1;
        if (sy < 0 || sy >= in.height) continue;
        const float* line = source + sz * planeStride + sy * rowStride;
        const float* taps = w + (dz * 3 + dy) * 3 * kGroupWidth * kLanes;
        for (int64_t dx = 0; dx < 3; dx++) {
          const int64_t sx = x + dx - 1;
          const float* k = taps + dx * kGroupWidth * kLanes;
          if (sx >= 0 && sx < in.width) addTap(line + sx * in.block, k, a);
          if (pair && sx + 1 < in.width) addTap(line + (sx + 1) * in.block, k, b);
        }
      }
    }
    const __m256 first = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    _mm256_storeu_ps(target + x * out.block, relu ? _mm256_max_ps(first, zero) : first);
    if (pair) {
      const __m256 second = _mm256_add_ps(_mm256_add_ps(b[0], b[1]), _mm256_add_ps(b[2], b[3]));
      _mm256_storeu_ps(target + (x + 1) * out.block, relu ? _mm256_max_ps(second, zero) : second);
    }
  }
}

// y = conv(x) + bias (then ReLU) for x and y blocked alike, with weights packed by packWeights.
inline void convolve(const Blocked& x, const Blocked& y, const float* packed, const float* bias, int64_t samples, bool relu) {
  const int64_t registers = x.channels / kLanes, rows = x.depth * x.height;
  at::parallel_for(0, samples * registers * rows, 4, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; item++) {
      const int64_t row = item % rows, reg = item / rows % registers, n = item / rows / registers;
      convolveRow(x, y, packed + reg * kTaps * kGroupWidth * kLanes, bias, n, reg * kLanes, row / x.height, row % x.height, relu);
    }
  });
}

// acc[k] += permute(v, k) · g: input channel k of each group times the output gradient of each lane.
inline void addProducts(__m256 g, __m256 v, __m256* acc) {
  acc[0] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x00), g, acc[0]);
  acc[1] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x55), g, acc[1]);
  acc[2] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xaa), g, acc[2]);
  acc[3] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xff), g, acc[3]);
}

// One output position's contribution to the three taps along x (acc[dx·4 + k]); the taps that would
// read outside the row are the padding's zeros.
template <bool HasLeft, bool HasRight>
inline void addGradientPosition(const float* gradient, const float* centre, int64_t block, __m256* acc) {
  const __m256 g = _mm256_loadu_ps(gradient);
  if (HasLeft) addProducts(g, _mm256_loadu_ps(centre - block), acc);
  addProducts(g, _mm256_loadu_ps(centre), acc + 4);
  if (HasRight) addProducts(g, _mm256_loadu_ps(centre + block), acc + 8);
}

// The weight gradient of taps (dz, dy, 0..2) for the 8 output channels from `channel`:
// Σ over samples and output positions of dy(o, p) · x(group input k, p + tap − 1), written to
// result[dx][k][8 lanes]. Each plane (n, z) is summed in registers and then added in double, so that
// the rounding does not grow with the batch and clip length.
inline void weightGradientTaps(const Blocked& x, const Blocked& dy, int64_t samples, int64_t channel, int64_t dz, int64_t dyOffset, float* result) {
  double totals[3 * kGroupWidth * kLanes] = {};
  const int64_t rowStride = x.width * x.block, planeStride = x.height * rowStride;
  for (int64_t n = 0; n < samples; n++) {
    const float* source = x.origin(n, channel);
    const float* gradient = dy.origin(n, channel);
    for (int64_t z = 0; z < dy.depth; z++) {
      const int64_t sz = z + dz - 1;
      if (sz < 0 || sz >= x.depth) continue;
      __m256 acc[12];
      for (__m256& a : acc) a = _mm256_setzero_ps();
      for (int64_t y = 0; y < dy.height; y++) {
        const int64_t sy = y + dyOffset - 1;
        if (sy < 0 || sy >= x.height) continue;
        const float* line = source + sz * planeStride + sy * rowStride;
        const float* g = gradient + (z * dy.height + y) * dy.width * dy.block;
        const int64_t width = dy.width;
        if (width == 1) {
          addGradientPosition<false, false>(g, line, x.block, acc);
          continue;
        }
        addGradientPosition<false, true>(g, line, x.block, acc);
        for (int64_t p = 1; p + 1 < width; p++) addGradientPosition<true, true>(g + p * dy.block, line + p * x.block, x.block, acc);
        addGradientPosition<true, false>(g + (width - 1) * dy.block, line + (width - 1) * x.block, x.block, acc);
      }
      float plane[3 * kGroupWidth * kLanes];
      for (int i = 0; i < 12; i++) _mm256_storeu_ps(plane + i * kLanes, acc[i]);
      for (int64_t i = 0; i < 3 * kGroupWidth * kLanes; i++) totals[i] += plane[i];
    }
  }
  for (int64_t i = 0; i < 3 * kGroupWidth * kLanes; i++) result[i] = static_cast<float>(totals[i]);
}

#pragma GCC pop_options

// The gradient of the dense weights C×4×3×3×3 of y = conv(x), from x and dy (both blocked, C channels).
inline at::Tensor weightGradient(const Blocked& x, const Blocked& dy, int64_t samples) {
  const int64_t registers = x.channels / kLanes;
  at::Tensor packed = at::empty({registers, kTaps, kGroupWidth, kLanes}, at::kFloat);
  float* out = packed.data_ptr<float>();
  // One item per register and (dz, dy): it owns its three taps along x, so no two threads add to the same sums.
  at::parallel_for(0, registers * 9, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; item++) {
      const int64_t reg = item / 9, plane = item % 9;
      weightGradientTaps(x, dy, samples, reg * kLanes, plane / 3, plane % 3, out + (reg * kTaps + plane * 3) * kGroupWidth * kLanes);
    }
  });
  return packed.permute({0, 3, 2, 1}).reshape({x.channels, kGroupWidth, 3, 3, 3});
}

}  // namespace grouped
}  // namespace stcnet
#endif
