// Winograd convolution F(2×2×2, 3×3×3) on oneDNN's blocked layout, for the inference mode (issue 9).
// A 3×3×3 convolution at stride 1 computes each 2×2×2 block of outputs from a 4×4×4 block of inputs
// ("tile"); in Winograd's transformed domain that takes 64 products per input/output channel pair
// instead of 8·27 = 216, 3.4× fewer multiply-adds. oneDNN has Winograd for 2D convolutions only and
// libtorch none for 3D, so a convolution-bound network runs at the CPU's multiply-add peak on both
// stcnet's and PyTorch's direct kernels; this is the way past it. Per chunk of tiles, on one thread so
// that the transformed tiles stay in cache:
//   V_ξ = (Bᵀ d B)_ξ for each tile d and input channel (ξ: the 64 transformed points),
//   M_ξ = V_ξ · U_ξ, 64 small matrix products with U = G g Gᵀ, the weights transformed once,
//   y = Aᵀ M A, plus bias, optionally plus a residual and ReLU, written to the blocked output.
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), in three dimensions.
// Needs AVX2 and FMA (checked at load time: the class is exported only where the CPU has them).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <immintrin.h>
#include "mkldnn_common.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

constexpr int64_t kPoints = 64;  // 4×4×4 transformed points per tile
constexpr int64_t kRows = 6;     // tiles per micro-kernel call
constexpr int64_t kPanel = 16;   // output channels per micro-kernel call (two 8-lane registers)
constexpr int64_t kLanes = 8;    // channels per AVX2 register

// U = G g Gᵀ along each axis (in double, rounded once), packed [ξ][Cout/16][Cin][16] for the micro-kernel.
at::Tensor transformWeights(const at::Tensor& weight) {
  const int64_t out = weight.size(0), in = weight.size(1), panels = out / kPanel;
  const at::Tensor w = weight.to(at::kDouble).contiguous();
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  at::Tensor packed = at::empty({kPoints, panels, in, kPanel}, at::kFloat);
  const double* g = w.data_ptr<double>();
  float* u = packed.data_ptr<float>();
  at::parallel_for(0, out * in, 64, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; pair++) {
      const int64_t o = pair / in, c = pair % in;
      const double* k = g + pair * 27;
      double a[4][3][3] = {}, b[4][4][3] = {}, r[4][4][4] = {};
      for (int i = 0; i < 4; i++)
        for (int y = 0; y < 3; y++)
          for (int x = 0; x < 3; x++)
            for (int z = 0; z < 3; z++) a[i][y][x] += G[i][z] * k[(z * 3 + y) * 3 + x];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
          for (int x = 0; x < 3; x++)
            for (int y = 0; y < 3; y++) b[i][j][x] += G[j][y] * a[i][y][x];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
          for (int l = 0; l < 4; l++)
            for (int x = 0; x < 3; x++) r[i][j][l] += G[l][x] * b[i][j][x];
      for (int point = 0; point < kPoints; point++) {
        u[((point * panels + o / kPanel) * in + c) * kPanel + o % kPanel] = static_cast<float>(r[point / 16][point / 4 % 4][point % 4]);
      }
    }
  });
  return packed;
}

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
void transformInputTile(const Blocked& x, int64_t n, int64_t tz, int64_t ty, int64_t tx, int64_t channel, float* v, int64_t pointStride) {
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

// m[r][0..16) = Σ_c v[r][c] · u[c][0..16) for kRows rows: 12 accumulators, two weight loads and six
// broadcasts per input channel (the register blocking of BLIS's Haswell kernel).
void microKernel(const float* __restrict v, int64_t in, const float* __restrict u, float* __restrict m, int64_t mRowStride) {
  __m256 acc[kRows][2];
#pragma GCC unroll 6
  for (int64_t r = 0; r < kRows; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < in; c++) {
    const __m256 b0 = _mm256_loadu_ps(u + c * kPanel), b1 = _mm256_loadu_ps(u + c * kPanel + kLanes);
#pragma GCC unroll 6
    for (int64_t r = 0; r < kRows; r++) {
      const __m256 a = _mm256_broadcast_ss(v + r * in + c);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int64_t r = 0; r < kRows; r++) {
    _mm256_storeu_ps(m + r * mRowStride, acc[r][0]);
    _mm256_storeu_ps(m + r * mRowStride + kLanes, acc[r][1]);
  }
}

// y = Aᵀ M A + bias (+ what y holds, then ReLU) for one tile and 8 output channels from `channel`.
void transformOutputTile(const float* m, int64_t pointStride, const float* bias, const Blocked& y, int64_t n, int64_t tz, int64_t ty, int64_t tx,
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

TilePosition locate(const Tiles& tiles, int64_t tile) {
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
void transformInputs(const Blocked& x, const Tiles& tiles, int64_t first, int64_t count, float* v, int64_t vStride) {
  for (int64_t row = 0; row < count; row++) {
    const TilePosition t = locate(tiles, first + row);
    for (int64_t c = 0; c < x.channels; c += kLanes) transformInputTile(x, t.n, t.z, t.y, t.x, c, v + row * x.channels + c, vStride);
  }
}

// Rows [from, to) of V zeroed: the micro-kernel's rows past the last tile.
void zeroRows(float* v, int64_t vStride, int64_t channels, int64_t from, int64_t to) {
  for (int64_t point = 0; point < kPoints; point++) std::fill_n(v + point * vStride + from * channels, (to - from) * channels, 0.f);
}

// Step 2: M_ξ = V_ξ · U_ξ for points [pointBegin, pointEnd), rows [0, rows) (a multiple of kRows).
void multiply(const float* v, int64_t vStride, int64_t in, const float* u, float* m, int64_t mStride, int64_t out, int64_t rows,
              int64_t pointBegin, int64_t pointEnd) {
  const int64_t panels = out / kPanel;
  for (int64_t point = pointBegin; point < pointEnd; point++) {
    for (int64_t panel = 0; panel < panels; panel++) {
      const float* weights = u + (point * panels + panel) * in * kPanel;
      for (int64_t row = 0; row < rows; row += kRows) {
        microKernel(v + point * vStride + row * in, in, weights, m + point * mStride + row * out + panel * kPanel, out);
      }
    }
  }
}

// Step 3: the outputs of tiles [first, first + count) from the rows of m from its start.
void transformOutputs(const float* m, int64_t mStride, const float* bias, const Blocked& y, const Tiles& tiles, int64_t first, int64_t count,
                      bool accumulate, bool relu) {
  for (int64_t row = 0; row < count; row++) {
    const TilePosition t = locate(tiles, first + row);
    for (int64_t c = 0; c < y.channels; c += kLanes) {
      transformOutputTile(m + row * y.channels + c, mStride, bias, y, t.n, t.z, t.y, t.x, c, accumulate, relu);
    }
  }
}

#pragma GCC pop_options

// WinogradConvolution(weight, bias|null): a 3×3×3 convolution at stride 1, padding 1 (no dilation, one
//   group), prepared once from its dense float32 weight Cout×Cin×3×3×3 (Cout a multiple of 16, Cin of 8).
//   forward(input, residual|null, relu) -> MKLDNN result in input's channel blocking (8 or 16):
//   conv(input) + bias, plus residual when given (written into residual's buffer when its layout is the
//   output's, else into a reordered copy), then ReLU when relu is true.
class WinogradConvolution : public Napi::ObjectWrap<WinogradConvolution> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "WinogradConvolution", {
      InstanceMethod<&WinogradConvolution::Forward>("forward"),
      InstanceMethod<&WinogradConvolution::Release>("release"),
    });
  }

  explicit WinogradConvolution(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WinogradConvolution>(info) {
    auto env = info.Env();
    if (info.Length() != 2) throw Napi::TypeError::New(env, "WinogradConvolution: expected (weight, bias|null)");
    const at::Tensor& weight = unwrapTensor(info[0], "WinogradConvolution: weight");
    if (!info[1].IsNull()) bias_ = unwrapTensor(info[1], "WinogradConvolution: bias");
    guard(env, "WinogradConvolution", [&] {
      TORCH_CHECK(!weight.is_mkldnn() && weight.scalar_type() == at::kFloat && weight.dim() == 5 && weight.size(2) == 3 && weight.size(3) == 3 &&
                  weight.size(4) == 3, "weight must be a dense float32 tensor Cout×Cin×3×3×3, got ", weight.sizes());
      TORCH_CHECK(weight.size(0) % kPanel == 0 && weight.size(1) % kLanes == 0, "needs output channels in multiples of ", kPanel,
                  " and input channels in multiples of ", kLanes, ", got ", weight.size(0), " and ", weight.size(1));
      bias_ = denseBias(bias_, weight.size(0));
      if (bias_.defined()) bias_ = bias_.clone();  // prepared once, like the weights: later changes to the caller's bias are not seen
      in_ = weight.size(1);
      out_ = weight.size(0);
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      transformed_ = transformWeights(weight);
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (info.Length() != 3 || !info[2].IsBoolean()) throw Napi::TypeError::New(env, "WinogradConvolution.forward: expected (input, residual|null, relu)");
    const at::Tensor& input = unwrapTensor(info[0], "WinogradConvolution.forward: input");
    const at::Tensor* residual = info[1].IsNull() ? nullptr : &unwrapTensor(info[1], "WinogradConvolution.forward: residual");
    const bool relu = info[2].As<Napi::Boolean>().Value();
    return guard(env, "WinogradConvolution.forward", [&]() -> Napi::Value {
      TORCH_CHECK(transformed_.defined(), "used after release()");
      TORCH_CHECK(input.is_mkldnn() && input.scalar_type() == at::kFloat && input.dim() == 5, "input must be a 5-D float32 MKLDNN tensor");
      TORCH_CHECK(input.size(1) == in_, "input has ", input.size(1), " channels, the weight takes ", in_);
      const ideep::dims outDims = {input.size(0), out_, input.size(2), input.size(3), input.size(4)};
      TORCH_CHECK(!residual || (residual->is_mkldnn() && residual->sizes() == c10::IntArrayRef(outDims)),
                  "residual must be an MKLDNN tensor of the output's shape ", c10::IntArrayRef(outDims));
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      // Input and output blocked by 8 or 16 channels (oneDNN's choice for the CPU); other layouts are reordered.
      ideep::tensor source = at::native::itensor_from_mkldnn(input);
      const Blocked x = blockedView(source);
      const ideep::tensor::desc outDesc = blockedDesc(outDims, x.block);
      ideep::tensor result;
      bool inPlace = false;
      if (residual) {
        result = at::native::itensor_from_mkldnn(*residual);
        inPlace = result.get_desc() == outDesc;
        if (!inPlace) result = result.reorder_if_differ_in(outDesc);
      } else {
        result = ideep::tensor(outDesc);
      }
      const Blocked y = blockedView(result);
      run(x, y, input.size(0), residual != nullptr, relu);
      if (inPlace) return wrapTensor(env, *residual);
      return wrapTensor(env, at::native::new_with_itensor_mkldnn(std::move(result), at::kFloat, input.device()));
    });
  }

  void run(const Blocked& x, const Blocked& y, int64_t samples, bool accumulate, bool relu) {
    const Tiles tiles{(x.depth + 1) / 2, (x.height + 1) / 2, (x.width + 1) / 2};
    const int64_t total = samples * tiles.count();
    const float* u = transformed_.data_ptr<float>();
    const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    const int64_t allRows = (total + kRows - 1) / kRows * kRows;
    const int64_t allFloats = kPoints * (pointStride(allRows, in_) + pointStride(allRows, out_));
    // Wide layers (U of 16 MiB at 256 channels) with few tiles: all tiles through each step in turn, so
    // that every U_ξ is read once. Measured at 256 channels, 2×7×7: 1.0–1.2× the direct convolution this
    // way, 0.5× chunked; at 64 and 128 channels chunked is the faster (1.4–2.2× direct, against
    // 1.1–1.9×). The scratch for all tiles is kept to 64 MiB (2×7×7 at batch 8: 17 MiB).
    if (in_ + out_ >= 512 && allFloats * static_cast<int64_t>(sizeof(float)) <= (int64_t{64} << 20)) {
      const int64_t rows = allRows, vStride = pointStride(rows, in_), mStride = pointStride(rows, out_);
      float* v = scratch(1, allFloats)[0];
      float* m = v + kPoints * vStride;
      at::parallel_for(0, total, 4, [&](int64_t begin, int64_t end) { transformInputs(x, tiles, begin, end - begin, v + begin * in_, vStride); });
      zeroRows(v, vStride, in_, total, rows);
      at::parallel_for(0, kPoints, 1, [&](int64_t begin, int64_t end) { multiply(v, vStride, in_, u, m, mStride, out_, rows, begin, end); });
      at::parallel_for(0, total, 4, [&](int64_t begin, int64_t end) {
        transformOutputs(m + begin * out_, mStride, bias, y, tiles, begin, end - begin, accumulate, relu);
      });
      return;
    }
    // A few tiles at a time through all three steps on one thread, in its cache; U is read again for
    // every chunk. Tiles per chunk: the chunk's V and M stay within about half of L2.
    const int64_t perChunk = in_ + out_ <= 256 ? 2 * kRows : kRows;
    const int64_t vStride = pointStride(perChunk, in_), mStride = pointStride(perChunk, out_);
    const std::vector<float*> buffers = scratch(at::get_num_threads(), kPoints * (vStride + mStride));
    at::parallel_for(0, (total + perChunk - 1) / perChunk, 1, [&](int64_t begin, int64_t end) {
      float* v = buffers[at::get_thread_num()];
      float* m = v + kPoints * vStride;
      for (int64_t chunk = begin; chunk < end; chunk++) {
        const int64_t first = chunk * perChunk, count = std::min(perChunk, total - first);
        const int64_t rows = (count + kRows - 1) / kRows * kRows;
        transformInputs(x, tiles, first, count, v, vStride);
        zeroRows(v, vStride, in_, count, rows);
        multiply(v, vStride, in_, u, m, mStride, out_, rows, 0, kPoints);
        transformOutputs(m, mStride, bias, y, tiles, first, count, accumulate, relu);
      }
    });
  }

  // `count` scratch buffers of at least `floats` floats each, kept between calls.
  std::vector<float*> scratch(int64_t count, int64_t floats) {
    if (static_cast<int64_t>(scratch_.size()) < count || scratch_[0].numel() < floats) {
      scratch_.assign(count, at::Tensor());
      for (auto& buffer : scratch_) buffer = at::empty({floats}, at::kFloat);
    }
    std::vector<float*> pointers;
    for (auto& buffer : scratch_) pointers.push_back(buffer.data_ptr<float>());
    return pointers;
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    transformed_.reset();
    bias_.reset();
    scratch_.clear();
    return info.Env().Undefined();
  }

  int64_t in_ = 0, out_ = 0;
  at::Tensor transformed_;  // U, packed [ξ][Cout/16][Cin][16]
  at::Tensor bias_;
  std::vector<at::Tensor> scratch_;  // V then M: of one chunk per thread, or of all tiles
};

#endif
}  // namespace

void initWinograd(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (cpuHasAvx2Fma()) exports.Set("WinogradConvolution", WinogradConvolution::Define(env));
#endif
}

}  // namespace stcnet
