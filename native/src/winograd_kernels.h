// The kernels of Winograd's F(2×2×2, 3×3×3) for 3×3×3 convolutions at stride 1, on oneDNN's blocked
// layout: shared by the inference mode (winograd.cc) and the training convolution with its gradients
// (winograd_autograd.cc). A 3×3×3 convolution at stride 1 computes each 2×2×2 block of outputs from a
// 4×4×4 block of inputs ("tile"); in Winograd's transformed domain that takes 64 products per
// input/output channel pair instead of 8·27 = 216, 3.4× fewer multiply-adds. oneDNN has Winograd for 2D
// convolutions only and libtorch none for 3D. Per chunk of tiles, on one thread so that the transformed
// tiles stay in cache:
//   V_ξ = (Bᵀ d B)_ξ for each tile d and input channel (ξ: the 64 transformed points),
//   M_ξ = V_ξ · U_ξ, 64 small matrix products with U = G g Gᵀ, the weights transformed once,
//   y = Aᵀ M A, plus bias, optionally plus a residual and ReLU, written to the blocked output.
// The weight gradient runs the same algebra backwards: dU_ξ = Σ_tiles (A dy Aᵀ)_ξᵀ · V_ξ, dg = Gᵀ dU G.
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), in three dimensions.
// Needs AVX2 and FMA (the users export their functions only where the CPU has them).
#pragma once
#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <vector>
#include "mkldnn_common.h"

namespace stcnet {
namespace winograd {

constexpr int64_t kPoints = 64;  // 4×4×4 transformed points per tile
constexpr int64_t kRows = 6;     // tiles per micro-kernel call
constexpr int64_t kPanel = 16;   // output channels per micro-kernel call (two 8-lane registers)
constexpr int64_t kLanes = 8;    // channels per AVX2 register

// Floats from one transformed point's rows to the next in the scratch: one cache line more than the rows
// take, so that the 64 points of a tile, read or written together, fall in different cache sets (at
// 12 rows × 64 channels the unpadded stride of 3 KiB put them all in 4 of L1's 64 sets).
constexpr int64_t pointStride(int64_t rows, int64_t channels) {
  return rows * channels + 16;
}

struct Tiles {
  int64_t depth, height, width;  // tiles per axis (output side / 2, rounded up)
  int64_t count() const { return depth * height * width; }
};

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// G along one axis of a 3-vector: (k0, (k0 + k1 + k2)/2, (k0 − k1 + k2)/2, k2).
inline void weightAxis(__m256 k0, __m256 k1, __m256 k2, __m256& u0, __m256& u1, __m256& u2, __m256& u3) {
  const __m256 half = _mm256_set1_ps(0.5f), outer = _mm256_add_ps(k0, k2);
  u0 = k0;
  u1 = _mm256_mul_ps(half, _mm256_add_ps(outer, k1));
  u2 = _mm256_mul_ps(half, _mm256_sub_ps(outer, k1));
  u3 = k2;
}

// U = G g Gᵀ along each axis, packed [ξ][Cout/16][Cin][16] for the micro-kernel: 8 output channels per
// register, so that each point's 8 values are stored together. Training transforms the weights at every
// step (twice, with the input gradient's), so this is vectorised: 512×512 channels take a few ms.
inline at::Tensor transformWeights(const at::Tensor& weight) {
  const int64_t out = weight.size(0), in = weight.size(1), panels = out / kPanel;
  TORCH_CHECK(out * in * 27 < (int64_t{1} << 31), "weight too large for the Winograd transform");
  const at::Tensor w = weight.contiguous();
  at::Tensor packed = at::empty({kPoints, panels, in, kPanel}, at::kFloat);
  const float* g = w.data_ptr<float>();
  float* u = packed.data_ptr<float>();
  const int32_t stride = static_cast<int32_t>(in * 27);  // from one output channel's kernel to the next
  const __m256i lanes = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
  at::parallel_for(0, panels * in * 2, 16, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; block++) {
      const int64_t half = block % 2, c = block / 2 % in, panel = block / 2 / in;
      const float* k = g + ((panel * kPanel + half * kLanes) * in + c) * 27;
      __m256 kernel[27], a[4][9], b[4][4][3];
      for (int z = 0; z < 27; z++) kernel[z] = _mm256_i32gather_ps(k + z, lanes, 4);
      for (int yx = 0; yx < 9; yx++) weightAxis(kernel[yx], kernel[9 + yx], kernel[18 + yx], a[0][yx], a[1][yx], a[2][yx], a[3][yx]);  // D
      for (int i = 0; i < 4; i++)
        for (int x = 0; x < 3; x++) weightAxis(a[i][x], a[i][3 + x], a[i][6 + x], b[i][0][x], b[i][1][x], b[i][2][x], b[i][3][x]);  // H
      float* target = u + (panel * in + c) * kPanel + half * kLanes;
      const int64_t pointStride = panels * in * kPanel;
      for (int ij = 0; ij < 16; ij++) {  // W, stored as each point is made
        __m256 r[4];
        weightAxis(b[ij / 4][ij % 4][0], b[ij / 4][ij % 4][1], b[ij / 4][ij % 4][2], r[0], r[1], r[2], r[3]);
        for (int l = 0; l < 4; l++) _mm256_storeu_ps(target + (ij * 4 + l) * pointStride, r[l]);
      }
    }
  });
  return packed;
}

// Bᵀ along one axis of a 4-vector, in place: (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
inline void inputAxis(__m256& d0, __m256& d1, __m256& d2, __m256& d3) {
  const __m256 t0 = _mm256_sub_ps(d0, d2), t1 = _mm256_add_ps(d1, d2), t2 = _mm256_sub_ps(d2, d1), t3 = _mm256_sub_ps(d1, d3);
  d0 = t0;
  d1 = t1;
  d2 = t2;
  d3 = t3;
}

// Aᵀ along one axis of a 4-vector: (m0 + m1 + m2, m1 − m2 − m3).
inline void outputAxis(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256& y0, __m256& y1) {
  y0 = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
  y1 = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
}

// V[ξ] (8 channels from `channel`) of tile (n, tz, ty, tx): the 4×4×4 inputs around it, zero outside.
// The first axis is transformed as each line of four is loaded, the last as the points are stored.
inline void transformInputTile(const Blocked& x, int64_t n, int64_t tz, int64_t ty, int64_t tx, int64_t channel, float* v, int64_t pointStride) {
  __m256 d[kPoints];
  const float* origin = x.origin(n, channel);
  const int64_t rowStride = x.width * x.block, planeStride = x.height * rowStride;
  const int64_t z0 = 2 * tz - 1, y0 = 2 * ty - 1, x0 = 2 * tx - 1;
  const bool interior = z0 >= 0 && z0 + 3 < x.depth && y0 >= 0 && y0 + 3 < x.height && x0 >= 0 && x0 + 3 < x.width;
  for (int64_t i = 0; i < 4; i++) {
    for (int64_t j = 0; j < 4; j++) {
      const float* line = origin + (z0 + i) * planeStride + (y0 + j) * rowStride + x0 * x.block;
      __m256* q = d + (i * 4 + j) * 4;
      if (interior) {
        for (int64_t l = 0; l < 4; l++) q[l] = _mm256_loadu_ps(line + l * x.block);
      } else {
        const bool inside = z0 + i >= 0 && z0 + i < x.depth && y0 + j >= 0 && y0 + j < x.height;
        for (int64_t l = 0; l < 4; l++) {
          q[l] = inside && x0 + l >= 0 && x0 + l < x.width ? _mm256_loadu_ps(line + l * x.block) : _mm256_setzero_ps();
        }
      }
      inputAxis(q[0], q[1], q[2], q[3]);
    }
  }
  for (int64_t i = 0; i < 4; i++)
    for (int64_t l = 0; l < 4; l++) inputAxis(d[i * 16 + l], d[i * 16 + 4 + l], d[i * 16 + 8 + l], d[i * 16 + 12 + l]);
  for (int64_t jl = 0; jl < 16; jl++) {
    __m256 d0 = d[jl], d1 = d[16 + jl], d2 = d[32 + jl], d3 = d[48 + jl];
    inputAxis(d0, d1, d2, d3);
    _mm256_storeu_ps(v + jl * pointStride, d0);
    _mm256_storeu_ps(v + (16 + jl) * pointStride, d1);
    _mm256_storeu_ps(v + (32 + jl) * pointStride, d2);
    _mm256_storeu_ps(v + (48 + jl) * pointStride, d3);
  }
}

// c[r][0..16) = Σ_k a[r·aRow + k·aDepth] · b[k·bStride + 0..16) for R rows (plus what c holds when
// Accumulate): 2R accumulators, two loads of b and R broadcasts per step of k (the register blocking of
// BLIS's Haswell kernel at R = 6). The forward pass's M_ξ = V_ξ · U_ξ and the weight gradient's
// dU_ξ += dM_ξᵀ · V_ξ are both this.
template <int R, bool Accumulate>
inline void rowsTimesPanel(const float* __restrict a, int64_t aRow, int64_t aDepth, const float* __restrict b, int64_t bStride, int64_t depth,
                           float* __restrict c, int64_t cStride) {
  __m256 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    acc[r][0] = Accumulate ? _mm256_loadu_ps(c + r * cStride) : _mm256_setzero_ps();
    acc[r][1] = Accumulate ? _mm256_loadu_ps(c + r * cStride + kLanes) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < depth; k++) {
    const __m256 b0 = _mm256_loadu_ps(b + k * bStride), b1 = _mm256_loadu_ps(b + k * bStride + kLanes);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m256 value = _mm256_broadcast_ss(a + r * aRow + k * aDepth);
      acc[r][0] = _mm256_fmadd_ps(value, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(value, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    _mm256_storeu_ps(c + r * cStride, acc[r][0]);
    _mm256_storeu_ps(c + r * cStride + kLanes, acc[r][1]);
  }
}

// y = Aᵀ M A + bias (+ what y holds, then ReLU) for one tile and 8 output channels from `channel`.
inline void transformOutputTile(const float* m, int64_t pointStride, const float* bias, const Blocked& y, int64_t n, int64_t tz, int64_t ty, int64_t tx,
                         int64_t channel, bool accumulate, bool relu) {
  __m256 a[32], b[16], r[8];
  for (int64_t ij = 0; ij < 16; ij++) {                                              // W axis: [i][j][2]
    const float* q = m + ij * 4 * pointStride;
    outputAxis(_mm256_loadu_ps(q), _mm256_loadu_ps(q + pointStride), _mm256_loadu_ps(q + 2 * pointStride), _mm256_loadu_ps(q + 3 * pointStride),
               a[ij * 2], a[ij * 2 + 1]);
  }
  for (int64_t i = 0; i < 4; i++)                                                    // H axis: [i][2][2]
    for (int64_t e = 0; e < 2; e++) outputAxis(a[i * 8 + e], a[i * 8 + 2 + e], a[i * 8 + 4 + e], a[i * 8 + 6 + e], b[i * 4 + e], b[i * 4 + 2 + e]);
  for (int64_t je = 0; je < 4; je++) outputAxis(b[je], b[4 + je], b[8 + je], b[12 + je], r[je], r[4 + je]);  // D axis: [2][2][2]
  const __m256 shift = bias ? _mm256_loadu_ps(bias + channel) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
  float* origin = y.origin(n, channel);
  const int64_t rowStride = y.width * y.block, planeStride = y.height * rowStride;
  for (int64_t i = 0; i < 2; i++) {
    const int64_t z = 2 * tz + i;
    if (z >= y.depth) break;
    for (int64_t j = 0; j < 2; j++) {
      const int64_t row = 2 * ty + j;
      if (row >= y.height) break;
      for (int64_t e = 0; e < 2; e++) {
        const int64_t col = 2 * tx + e;
        if (col >= y.width) break;
        float* out = origin + z * planeStride + row * rowStride + col * y.block;
        __m256 value = _mm256_add_ps(r[(i * 2 + j) * 2 + e], shift);
        if (accumulate) value = _mm256_add_ps(value, _mm256_loadu_ps(out));
        if (relu) value = _mm256_max_ps(value, zero);
        _mm256_storeu_ps(out, value);
      }
    }
  }
}

// Where tile `tile` of the flattened (n, tz, ty, tx) order is.
struct TilePosition {
  int64_t n, z, y, x;
};

inline TilePosition locate(const Tiles& tiles, int64_t tile) {
  TilePosition at;
  at.x = tile % tiles.width;
  tile /= tiles.width;
  at.y = tile % tiles.height;
  tile /= tiles.height;
  at.z = tile % tiles.depth;
  at.n = tile / tiles.depth;
  return at;
}

// Step 1: V of tiles [first, first + count) into the rows of v from its start.
inline void transformInputs(const Blocked& x, const Tiles& tiles, int64_t first, int64_t count, float* v, int64_t vStride) {
  for (int64_t row = 0; row < count; row++) {
    const TilePosition t = locate(tiles, first + row);
    for (int64_t c = 0; c < x.channels; c += kLanes) transformInputTile(x, t.n, t.z, t.y, t.x, c, v + row * x.channels + c, vStride);
  }
}

// Rows [from, to) of V zeroed: the micro-kernel's rows past the last tile.
inline void zeroRows(float* v, int64_t vStride, int64_t channels, int64_t from, int64_t to) {
  for (int64_t point = 0; point < kPoints; point++) std::fill_n(v + point * vStride + from * channels, (to - from) * channels, 0.f);
}

// The same products on AVX-512 (cpuUsesAvx512): c[r][p·16 .. p·16 + 16) = Σ_k a[r·aRow + k·aDepth] ·
// b[p·bPanel + k·bStride + 0..16) for R rows and P panels of 16 columns. At R = 6, P = 4 that is 24
// accumulators, four loads of b and six broadcasts for 24 multiply-adds per step of k.
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
template <int R, int P, bool Accumulate>
inline void rowsTimesPanels512(const float* __restrict a, int64_t aRow, int64_t aDepth, const float* __restrict b, int64_t bPanel, int64_t bStride,
                               int64_t depth, float* __restrict c, int64_t cStride) {
  __m512 acc[R][P];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) acc[r][p] = Accumulate ? _mm512_loadu_ps(c + r * cStride + p * 16) : _mm512_setzero_ps();
  for (int64_t k = 0; k < depth; k++) {
    __m512 column[P];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) column[p] = _mm512_loadu_ps(b + p * bPanel + k * bStride);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m512 value = _mm512_set1_ps(a[r * aRow + k * aDepth]);
#pragma GCC unroll 4
      for (int p = 0; p < P; p++) acc[r][p] = _mm512_fmadd_ps(value, column[p], acc[r][p]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) _mm512_storeu_ps(c + r * cStride + p * 16, acc[r][p]);
}

// R rows times `panels` panels (any count), four at a time.
template <int R, bool Accumulate>
inline void rowsTimesPanelsAvx512(const float* a, int64_t aRow, int64_t aDepth, const float* b, int64_t bPanel, int64_t bStride, int64_t depth,
                                  float* c, int64_t cStride, int64_t panels) {
  int64_t panel = 0;
  for (; panel + 4 <= panels; panel += 4) rowsTimesPanels512<R, 4, Accumulate>(a, aRow, aDepth, b + panel * bPanel, bPanel, bStride, depth, c + panel * 16, cStride);
  for (; panel + 2 <= panels; panel += 2) rowsTimesPanels512<R, 2, Accumulate>(a, aRow, aDepth, b + panel * bPanel, bPanel, bStride, depth, c + panel * 16, cStride);
  if (panel < panels) rowsTimesPanels512<R, 1, Accumulate>(a, aRow, aDepth, b + panel * bPanel, bPanel, bStride, depth, c + panel * 16, cStride);
}

__attribute__((noinline)) inline void multiplyAvx512(const float* v, int64_t vStride, int64_t in, const float* u, float* m, int64_t mStride, int64_t out,
                                                     int64_t rows, int64_t pointBegin, int64_t pointEnd) {
  const int64_t panels = out / kPanel;
  for (int64_t point = pointBegin; point < pointEnd; point++) {
    for (int64_t panel = 0; panel < panels;) {
      // As the AVX2 loop: a group of panels of U_ξ stays in cache while all rows pass it.
      const int64_t group = panels - panel >= 4 ? 4 : panels - panel >= 2 ? 2 : 1;
      const float* weights = u + (point * panels + panel) * in * kPanel;
      for (int64_t row = 0; row < rows; row += kRows) {
        const float* a = v + point * vStride + row * in;
        float* c = m + point * mStride + row * out + panel * kPanel;
        if (group == 4) rowsTimesPanels512<kRows, 4, false>(a, in, 1, weights, in * kPanel, kPanel, in, c, out);
        else if (group == 2) rowsTimesPanels512<kRows, 2, false>(a, in, 1, weights, in * kPanel, kPanel, in, c, out);
        else rowsTimesPanels512<kRows, 1, false>(a, in, 1, weights, in * kPanel, kPanel, in, c, out);
      }
      panel += group;
    }
  }
}

__attribute__((noinline)) inline void accumulateGradientAvx512(const float* w, const float* v, int64_t depth, int64_t in, int64_t out, float* du) {
  for (int64_t o = 0; o < out; o += kRows) {
    const float* a = w + o;
    float* block = du + o * in;
    switch (std::min(kRows, out - o)) {
      case 6: rowsTimesPanelsAvx512<6, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
      case 5: rowsTimesPanelsAvx512<5, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
      case 4: rowsTimesPanelsAvx512<4, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
      case 3: rowsTimesPanelsAvx512<3, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
      case 2: rowsTimesPanelsAvx512<2, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
      default: rowsTimesPanelsAvx512<1, true>(a, 1, out, v, 16, in, depth, block, in, in / kPanel); break;
    }
  }
}
#pragma GCC pop_options

// Step 2: M_ξ = V_ξ · U_ξ for points [pointBegin, pointEnd), rows [0, rows) (a multiple of kRows).
inline void multiply(const float* v, int64_t vStride, int64_t in, const float* u, float* m, int64_t mStride, int64_t out, int64_t rows,
              int64_t pointBegin, int64_t pointEnd) {
  if (cpuUsesAvx512()) return multiplyAvx512(v, vStride, in, u, m, mStride, out, rows, pointBegin, pointEnd);
  const int64_t panels = out / kPanel;
  for (int64_t point = pointBegin; point < pointEnd; point++) {
    for (int64_t panel = 0; panel < panels; panel++) {
      const float* weights = u + (point * panels + panel) * in * kPanel;
      for (int64_t row = 0; row < rows; row += kRows) {
        rowsTimesPanel<kRows, false>(v + point * vStride + row * in, in, 1, weights, kPanel, in, m + point * mStride + row * out + panel * kPanel, out);
      }
    }
  }
}

// Step 3: the outputs of tiles [first, first + count) from the rows of m from its start.
inline void transformOutputs(const float* m, int64_t mStride, const float* bias, const Blocked& y, const Tiles& tiles, int64_t first, int64_t count,
                      bool accumulate, bool relu) {
  for (int64_t row = 0; row < count; row++) {
    const TilePosition t = locate(tiles, first + row);
    for (int64_t c = 0; c < y.channels; c += kLanes) {
      transformOutputTile(m + row * y.channels + c, mStride, bias, y, t.n, t.z, t.y, t.x, c, accumulate, relu);
    }
  }
}


// The transpose of Aᵀ along one axis: the 4-vector a 2-vector of output gradients makes, (g0, g0 + g1, g0 − g1, −g1).
inline void gradientAxis(__m256 g0, __m256 g1, __m256& d0, __m256& d1, __m256& d2, __m256& d3) {
  d0 = g0;
  d1 = _mm256_add_ps(g0, g1);
  d2 = _mm256_sub_ps(g0, g1);
  d3 = _mm256_sub_ps(_mm256_setzero_ps(), g1);
}

// dM[ξ] = (A dy Aᵀ)_ξ (8 channels from `channel`) of tile (n, tz, ty, tx): the gradient of the tile's
// transformed products from its 2×2×2 output gradients (zero past the output's edge, which the forward
// pass does not write).
inline void transformOutputGradientTile(const Blocked& dy, int64_t n, int64_t tz, int64_t ty, int64_t tx, int64_t channel, float* w,
                                        int64_t pointStride) {
  __m256 g[8], a[16], b[32];
  const float* origin = dy.origin(n, channel);
  const int64_t rowStride = dy.width * dy.block, planeStride = dy.height * rowStride;
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 2; j++)
      for (int64_t e = 0; e < 2; e++) {
        const int64_t z = 2 * tz + i, row = 2 * ty + j, col = 2 * tx + e;
        g[(i * 2 + j) * 2 + e] = z < dy.depth && row < dy.height && col < dy.width
                                     ? _mm256_loadu_ps(origin + z * planeStride + row * rowStride + col * dy.block)
                                     : _mm256_setzero_ps();
      }
  for (int64_t je = 0; je < 4; je++) gradientAxis(g[je], g[4 + je], a[je], a[4 + je], a[8 + je], a[12 + je]);  // D axis: [4][2][2]
  for (int64_t z = 0; z < 4; z++)                                                                                  // H axis: [4][4][2]
    for (int64_t e = 0; e < 2; e++) gradientAxis(a[z * 4 + e], a[z * 4 + 2 + e], b[z * 8 + e], b[z * 8 + 2 + e], b[z * 8 + 4 + e], b[z * 8 + 6 + e]);
  for (int64_t zy = 0; zy < 16; zy++) {                                                                            // W axis: [4][4][4]
    __m256 d0, d1, d2, d3;
    gradientAxis(b[zy * 2], b[zy * 2 + 1], d0, d1, d2, d3);
    _mm256_storeu_ps(w + (zy * 4) * pointStride, d0);
    _mm256_storeu_ps(w + (zy * 4 + 1) * pointStride, d1);
    _mm256_storeu_ps(w + (zy * 4 + 2) * pointStride, d2);
    _mm256_storeu_ps(w + (zy * 4 + 3) * pointStride, d3);
  }
}

// dM of tiles [first, first + count) into the rows of w from its start.
inline void transformOutputGradients(const Blocked& dy, const Tiles& tiles, int64_t first, int64_t count, float* w, int64_t wStride) {
  for (int64_t row = 0; row < count; row++) {
    const TilePosition t = locate(tiles, first + row);
    for (int64_t c = 0; c < dy.channels; c += kLanes) transformOutputGradientTile(dy, t.n, t.z, t.y, t.x, c, w + row * dy.channels + c, wStride);
  }
}


// dU_ξ (out × in, row-major at du) += dM_ξᵀ · V_ξ over `depth` tiles: dM_ξ rows of `out`, V_ξ rows of `in`.
inline void accumulateGradient(const float* w, const float* v, int64_t depth, int64_t in, int64_t out, float* du) {
  if (cpuUsesAvx512()) return accumulateGradientAvx512(w, v, depth, in, out, du);
  for (int64_t o = 0; o < out; o += kRows) {
    const int64_t rows = std::min(kRows, out - o);
    for (int64_t c = 0; c < in; c += kPanel) {
      const float* a = w + o;
      const float* b = v + c;
      float* block = du + o * in + c;
      switch (rows) {
        case 6: rowsTimesPanel<6, true>(a, 1, out, b, in, depth, block, in); break;
        case 5: rowsTimesPanel<5, true>(a, 1, out, b, in, depth, block, in); break;
        case 4: rowsTimesPanel<4, true>(a, 1, out, b, in, depth, block, in); break;
        case 3: rowsTimesPanel<3, true>(a, 1, out, b, in, depth, block, in); break;
        case 2: rowsTimesPanel<2, true>(a, 1, out, b, in, depth, block, in); break;
        default: rowsTimesPanel<1, true>(a, 1, out, b, in, depth, block, in); break;
      }
    }
  }
}

#pragma GCC pop_options

// Scratch buffers kept between calls, so that each convolution does not map and fault fresh pages.
class Scratch {
 public:
  // `count` buffers of at least `floats` floats each.
  std::vector<float*> get(int64_t count, int64_t floats) {
    if (static_cast<int64_t>(buffers_.size()) < count || buffers_[0].numel() < floats) {
      buffers_.assign(count, at::Tensor());
      for (auto& buffer : buffers_) buffer = at::empty({floats}, at::kFloat);
    }
    std::vector<float*> pointers;
    for (auto& buffer : buffers_) pointers.push_back(buffer.data_ptr<float>());
    return pointers;
  }
  void clear() { buffers_.clear(); }

 private:
  std::vector<at::Tensor> buffers_;
};

// y = conv(x) (+ bias, + what y holds when `accumulate`, then ReLU when `relu`) for the weights
// transformed by transformWeights (`u`, `in` → `out` channels); x and y blocked, of `samples` samples.
inline void convolve(const float* u, const float* bias, int64_t in, int64_t out, const Blocked& x, const Blocked& y, int64_t samples,
                     bool accumulate, bool relu, Scratch& scratch) {
  const Tiles tiles{(x.depth + 1) / 2, (x.height + 1) / 2, (x.width + 1) / 2};
  const int64_t total = samples * tiles.count();
  const int64_t allRows = (total + kRows - 1) / kRows * kRows;
  const int64_t allFloats = kPoints * (pointStride(allRows, in) + pointStride(allRows, out));
  // Wide layers (U of 16 MiB at 256 channels) with few tiles: all tiles through each step in turn, so
  // that every U_ξ is read once. Measured at 256 channels, 2×7×7: 1.0–1.2× the direct convolution this
  // way, 0.5× chunked; at 64 and 128 channels chunked is the faster (1.4–2.2× direct, against
  // 1.1–1.9×). The scratch for all tiles is kept to 64 MiB (2×7×7 at batch 8: 17 MiB).
  if (in + out >= 512 && allFloats * static_cast<int64_t>(sizeof(float)) <= (int64_t{64} << 20)) {
    const int64_t rows = allRows, vStride = pointStride(rows, in), mStride = pointStride(rows, out);
    float* v = scratch.get(1, allFloats)[0];
    float* m = v + kPoints * vStride;
    at::parallel_for(0, total, 4, [&](int64_t begin, int64_t end) { transformInputs(x, tiles, begin, end - begin, v + begin * in, vStride); });
    zeroRows(v, vStride, in, total, rows);
    at::parallel_for(0, kPoints, 1, [&](int64_t begin, int64_t end) { multiply(v, vStride, in, u, m, mStride, out, rows, begin, end); });
    at::parallel_for(0, total, 4, [&](int64_t begin, int64_t end) {
      transformOutputs(m + begin * out, mStride, bias, y, tiles, begin, end - begin, accumulate, relu);
    });
    return;
  }
  // A few tiles at a time through all three steps on one thread, in its cache; U is read again for
  // every chunk. Tiles per chunk: the chunk's V and M stay within about half of L2.
  const int64_t perChunk = in + out <= 256 ? 2 * kRows : kRows;
  const int64_t vStride = pointStride(perChunk, in), mStride = pointStride(perChunk, out);
  const std::vector<float*> buffers = scratch.get(at::get_num_threads(), kPoints * (vStride + mStride));
  at::parallel_for(0, (total + perChunk - 1) / perChunk, 1, [&](int64_t begin, int64_t end) {
    float* v = buffers[at::get_thread_num()];
    float* m = v + kPoints * vStride;
    for (int64_t chunk = begin; chunk < end; chunk++) {
      const int64_t first = chunk * perChunk, count = std::min(perChunk, total - first);
      const int64_t rows = (count + kRows - 1) / kRows * kRows;
      transformInputs(x, tiles, first, count, v, vStride);
      zeroRows(v, vStride, in, count, rows);
      multiply(v, vStride, in, u, m, mStride, out, rows, 0, kPoints);
      transformOutputs(m, mStride, bias, y, tiles, first, count, accumulate, relu);
    }
  });
}

// The gradient of the weights Cout×Cin×3×3×3 of y = conv(x), from x and dy (both blocked, `samples`
// samples): dU_ξ = Σ_tiles dM_ξᵀ · V_ξ over chunks of tiles (transformed on all threads, then the
// 64 points' products shared out among them), then
// dg = Gᵀ dU G along each axis (in double).
inline at::Tensor weightGradient(const Blocked& x, const Blocked& dy, int64_t samples, Scratch& scratch) {
  const int64_t in = x.channels, out = dy.channels;
  const Tiles tiles{(x.depth + 1) / 2, (x.height + 1) / 2, (x.width + 1) / 2};
  const int64_t total = samples * tiles.count();
  // Tiles per chunk: V and dM of a chunk within 16 MiB, so that they stay in the last-level cache.
  const int64_t perChunk = std::max<int64_t>(kRows, std::min(total, (int64_t{16} << 20) / (static_cast<int64_t>(sizeof(float)) * kPoints * (in + out))));
  const int64_t vStride = pointStride(perChunk, in), wStride = pointStride(perChunk, out);
  float* v = scratch.get(1, kPoints * (vStride + wStride))[0];
  float* w = v + kPoints * vStride;
  at::Tensor dU = at::zeros({kPoints, out, in}, at::kFloat);
  float* du = dU.data_ptr<float>();
  for (int64_t first = 0; first < total; first += perChunk) {
    const int64_t count = std::min(perChunk, total - first);
    at::parallel_for(0, count, 4, [&](int64_t begin, int64_t end) {
      transformInputs(x, tiles, first + begin, end - begin, v + begin * in, vStride);
      transformOutputGradients(dy, tiles, first + begin, end - begin, w + begin * out, wStride);
    });
    at::parallel_for(0, kPoints, 1, [&](int64_t begin, int64_t end) {
      for (int64_t point = begin; point < end; point++) accumulateGradient(w + point * wStride, v + point * vStride, count, in, out, du + point * out * in);
    });
  }
  // dg = Gᵀ dU G per axis, Gᵀ being the transpose of transformWeights' G.
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  at::Tensor gradient = at::empty({out, in, 3, 3, 3}, at::kFloat);
  float* dg = gradient.data_ptr<float>();
  at::parallel_for(0, out * in, 64, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; pair++) {
      double r[4][4][4], b[4][4][3] = {}, a[4][3][3] = {}, k[3][3][3] = {};
      for (int64_t point = 0; point < kPoints; point++) r[point / 16][point / 4 % 4][point % 4] = du[point * out * in + pair];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
          for (int x = 0; x < 3; x++)
            for (int l = 0; l < 4; l++) b[i][j][x] += G[l][x] * r[i][j][l];
      for (int i = 0; i < 4; i++)
        for (int y = 0; y < 3; y++)
          for (int x = 0; x < 3; x++)
            for (int j = 0; j < 4; j++) a[i][y][x] += G[j][y] * b[i][j][x];
      for (int z = 0; z < 3; z++)
        for (int y = 0; y < 3; y++)
          for (int x = 0; x < 3; x++)
            for (int i = 0; i < 4; i++) k[z][y][x] += G[i][z] * a[i][y][x];
      for (int z = 0; z < 27; z++) dg[pair * 27 + z] = static_cast<float>(k[z / 9][z / 3 % 3][z % 3]);
    }
  });
  return gradient;
}

}  // namespace winograd
}  // namespace stcnet
#endif
