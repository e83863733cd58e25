// The stem convolution for training: stemConv3d(input, weight, bias|null, stride, padding) for a
// convolution of few input channels (RGB) with 7 taps along x at stride 1 or 2, like Hara et al.'s
// 7×7×7 stem at stride (1, 2, 2). Its forward and input gradient are oneDNN's (libtorch's), which run
// the forward at this CPU's FMA peak; its weight gradient, which oneDNN 2.6 runs at ≈ 40% of it (in a
// training step of STC-ResNet-18 at 16×112², that one gradient took 29% of the step), is computed here:
//   dW[o][c][kt][kh][kw] = Σ over samples and output positions of dy[o](t, y, x) · x[c](t·st + kt − pt,
//   y·sy + kh − py, x·sx + kw − px).
// A register holds 8 output channels' gradients at one position (the output gradient transposed to
// that layout per block of 8 output rows, reused by every input channel and tap), and each input value is
// broadcast once per pair of positions; 7 accumulators, one per kw, run over the block's rows. Each
// (sample, output frame) is a work item; a thread sums its items into its own partial sums (in double),
// added together at the end. 1.4–3× oneDNN's weight gradient at the stems of stcnet's models (2 threads).
// Needs AVX2 and FMA (checked at load time: the function is exported only where the CPU has them).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <immintrin.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>
#include <vector>
#include "mkldnn_common.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kTapsX = 7;    // taps along x
constexpr int64_t kLanes = 8;    // output channels per register
constexpr int64_t kRowBlock = 8;  // output rows whose output gradient is transposed at once

struct Geometry {
  int64_t samples, channels, outputs;
  int64_t depth;                          // the input's
  int64_t outDepth, outHeight, outWidth;  // the output's
  int64_t kernelDepth, kernelHeight;
  int64_t strideDepth, strideHeight, strideWidth;  // strideWidth: 1 or 2
  int64_t padDepth, padHeight, padWidth;
  int64_t registers() const { return (outputs + kLanes - 1) / kLanes; }  // output channels in registers of 8
  int64_t taps() const { return channels * kernelDepth * kernelHeight; }   // (c, kt, kh): each with kTapsX × outputs sums
};

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// sums[kw] += Σ over `rows` output rows and their positions of dy(position) · x(position·s + kw), for 8
// output channels: `gradient` holds each position's 8 channels at `positionStride` floats apart (rows
// width·positionStride apart), `input` the first row's padded input row (rows inputStride apart).
// Two positions a step share the broadcast inputs (position x+1 reads tap kw at s + kw of position x's).
// The seven sums are named registers: kept in an array, GCC stored them to the stack at every step.
template <int64_t StrideWidth>
inline void addRows(const float* gradient, int64_t positionStride, const float* input, int64_t inputStride, int64_t rows, int64_t width,
                    float* sums) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0;
  for (int64_t row = 0; row < rows; row++) {
    const float* g = gradient + row * width * positionStride;
    const float* x = input + row * inputStride;
    int64_t position = 0;
    for (; position + 1 < width; position += 2, g += 2 * positionStride, x += 2 * StrideWidth) {
      const __m256 first = _mm256_loadu_ps(g), second = _mm256_loadu_ps(g + positionStride);
      // Input i feeds tap i of the first position and tap i − s of the second.
      const auto add = [&](int64_t i, __m256& firstTap) {
        const __m256 v = _mm256_broadcast_ss(x + i);
        firstTap = _mm256_fmadd_ps(first, v, firstTap);
        return v;
      };
      if constexpr (StrideWidth == 2) {
        add(0, a0);
        add(1, a1);
        a0 = _mm256_fmadd_ps(second, add(2, a2), a0);
        a1 = _mm256_fmadd_ps(second, add(3, a3), a1);
        a2 = _mm256_fmadd_ps(second, add(4, a4), a2);
        a3 = _mm256_fmadd_ps(second, add(5, a5), a3);
        a4 = _mm256_fmadd_ps(second, add(6, a6), a4);
        a5 = _mm256_fmadd_ps(second, _mm256_broadcast_ss(x + 7), a5);
        a6 = _mm256_fmadd_ps(second, _mm256_broadcast_ss(x + 8), a6);
      } else {
        add(0, a0);
        a0 = _mm256_fmadd_ps(second, add(1, a1), a0);
        a1 = _mm256_fmadd_ps(second, add(2, a2), a1);
        a2 = _mm256_fmadd_ps(second, add(3, a3), a2);
        a3 = _mm256_fmadd_ps(second, add(4, a4), a3);
        a4 = _mm256_fmadd_ps(second, add(5, a5), a4);
        a5 = _mm256_fmadd_ps(second, add(6, a6), a5);
        a6 = _mm256_fmadd_ps(second, _mm256_broadcast_ss(x + 7), a6);
      }
    }
    if (position < width) {  // an odd width's last position
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 1), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 2), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 3), a3);
      a4 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 4), a4);
      a5 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 5), a5);
      a6 = _mm256_fmadd_ps(_mm256_loadu_ps(g), _mm256_broadcast_ss(x + 6), a6);
    }
  }
  const __m256 totals[kTapsX] = {a0, a1, a2, a3, a4, a5, a6};
  for (int64_t kw = 0; kw < kTapsX; kw++) _mm256_storeu_ps(sums + kw * kLanes, _mm256_add_ps(_mm256_loadu_ps(sums + kw * kLanes), totals[kw]));
}

#pragma GCC pop_options

// One output frame (n, t)'s contribution to every weight, added to `partial`
// ([c][kt][kh][o / 8][kw][o mod 8], double). Per block of output rows, the output gradient is transposed
// to [o / 8][row][x][o mod 8] (channels padded to whole registers with zeros) in `transposed`, so that
// each register's positions are contiguous; then every (c, kt, kh) and register of 8 output channels runs
// over it. `block` sums the frame in float.
template <int64_t StrideWidth>
void addFrame(const float* dy, const float* padded, int64_t paddedHeight, int64_t paddedWidth, const Geometry& g, int64_t n, int64_t t,
              double* partial, std::vector<float>& transposed, std::vector<float>& block) {
  const int64_t perTap = g.registers() * kTapsX * kLanes;
  const int64_t perRegister = kRowBlock * g.outWidth * kLanes;  // floats per register in `transposed`
  transposed.assign(g.registers() * perRegister, 0.0f);
  block.assign(g.taps() * perTap, 0.0f);
  const int64_t paddedDepth = g.depth + 2 * g.padDepth;
  for (int64_t first = 0; first < g.outHeight; first += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, g.outHeight - first);
    for (int64_t o = 0; o < g.outputs; o++) {
      const float* source = dy + (((n * g.outputs + o) * g.outDepth + t) * g.outHeight + first) * g.outWidth;
      float* target = transposed.data() + o / kLanes * perRegister + o % kLanes;
      for (int64_t position = 0; position < rows * g.outWidth; position++) target[position * kLanes] = source[position];
    }
    for (int64_t c = 0; c < g.channels; c++) {
      for (int64_t kt = 0; kt < g.kernelDepth; kt++) {
        const float* plane = padded + ((n * g.channels + c) * paddedDepth + t * g.strideDepth + kt) * paddedHeight * paddedWidth;
        for (int64_t kh = 0; kh < g.kernelHeight; kh++) {
          const float* input = plane + (first * g.strideHeight + kh) * paddedWidth;
          float* sums = block.data() + ((c * g.kernelDepth + kt) * g.kernelHeight + kh) * perTap;
          for (int64_t reg = 0; reg < g.registers(); reg++) {
            addRows<StrideWidth>(transposed.data() + reg * perRegister, kLanes, input, g.strideHeight * paddedWidth, rows, g.outWidth,
                                 sums + reg * kTapsX * kLanes);
          }
        }
      }
    }
  }
  for (size_t i = 0; i < block.size(); i++) partial[i] += block[i];
}

at::Tensor weightGradient(const at::Tensor& input, const at::Tensor& gradOutput, const Geometry& g) {
  // The input zero-padded on every side, so that no tap needs a bounds check (x also gets the stride's
  // extra column that the second position of a step may read past the last output).
  const at::Tensor padded = at::constant_pad_nd(input, {g.padWidth, g.padWidth + g.strideWidth, g.padHeight, g.padHeight, g.padDepth, g.padDepth}, 0);
  const int64_t paddedHeight = padded.size(3), paddedWidth = padded.size(4);
  const int64_t sums = g.taps() * g.registers() * kTapsX * kLanes;
  const int threads = at::get_num_threads();
  std::vector<std::vector<double>> partials(threads);
  std::vector<std::vector<float>> transposed(threads), blocks(threads);
  const float* dy = gradOutput.data_ptr<float>();
  const float* x = padded.data_ptr<float>();
  const auto addFrameAtStride = g.strideWidth == 2 ? addFrame<2> : addFrame<1>;
  at::parallel_for(0, g.samples * g.outDepth, 1, [&](int64_t begin, int64_t end) {
    const int thread = at::get_thread_num();
    std::vector<double>& partial = partials[thread];
    if (partial.empty()) partial.assign(sums, 0.0);
    for (int64_t frame = begin; frame < end; frame++) {
      const int64_t n = frame / g.outDepth, t = frame % g.outDepth;
      addFrameAtStride(dy, x, paddedHeight, paddedWidth, g, n, t, partial.data(), transposed[thread], blocks[thread]);
    }
  });
  // partial[c][kt][kh][o / 8][kw][o mod 8] → dW[o][c][kt][kh][kw]
  at::Tensor gradWeight = at::empty({g.outputs, g.channels, g.kernelDepth, g.kernelHeight, kTapsX}, at::kFloat);
  float* out = gradWeight.data_ptr<float>();
  for (int64_t tap = 0; tap < g.taps(); tap++) {
    for (int64_t o = 0; o < g.outputs; o++) {
      for (int64_t kw = 0; kw < kTapsX; kw++) {
        const int64_t index = ((tap * g.registers() + o / kLanes) * kTapsX + kw) * kLanes + o % kLanes;
        double total = 0;
        for (const std::vector<double>& partial : partials) total += partial.empty() ? 0.0 : partial[index];
        out[(o * g.taps() + tap) * kTapsX + kw] = static_cast<float>(total);
      }
    }
  }
  return gradWeight;
}

struct StemConv3d : public torch::autograd::Function<StemConv3d> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                            std::vector<int64_t> stride, std::vector<int64_t> padding) {
    const at::Tensor x = input.contiguous();
    ctx->save_for_backward({x, weight});
    ctx->saved_data["bias"] = bias.has_value();
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    return at::mkldnn_convolution(x, weight.contiguous(), bias, padding, stride, {1, 1, 1}, 1);
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradients) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &input = saved[0], &weight = saved[1];
    const std::vector<int64_t> stride = ctx->saved_data["stride"].toIntVector(), padding = ctx->saved_data["padding"].toIntVector();
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // no second-order gradients
    const at::Tensor gradOutput = gradients[0].contiguous();
    at::Tensor gradInput, gradWeight, gradBias;
    if (ctx->needs_input_grad(0)) {
      gradInput = std::get<0>(at::convolution_backward(gradOutput, input, weight, c10::nullopt, stride, padding, {1, 1, 1}, false, {0, 0, 0}, 1,
                                                       {true, false, false}));
    }
    if (ctx->needs_input_grad(1)) {
      Geometry g;
      g.samples = input.size(0), g.channels = input.size(1), g.outputs = weight.size(0);
      g.depth = input.size(2);
      g.outDepth = gradOutput.size(2), g.outHeight = gradOutput.size(3), g.outWidth = gradOutput.size(4);
      g.kernelDepth = weight.size(2), g.kernelHeight = weight.size(3);
      g.strideDepth = stride[0], g.strideHeight = stride[1], g.strideWidth = stride[2];
      g.padDepth = padding[0], g.padHeight = padding[1], g.padWidth = padding[2];
      gradWeight = weightGradient(input, gradOutput, g);
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gradBias = gradOutput.sum({0, 2, 3, 4});
    return {gradInput, gradWeight, gradBias, at::Tensor(), at::Tensor()};
  }
};

// stemConv3d(input, weight, bias|null, stride, padding): conv3d(input, weight, bias, stride, padding) for
//   a weight O×C×kt×kh×7 (no dilation, one group) at stride 1 or 2 along x, with padding below 7 along x.
Napi::Value StemConv3dBinding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 5) throw Napi::TypeError::New(env, "stemConv3d: expected (input, weight, bias|null, stride, padding)");
  const at::Tensor& input = unwrapTensor(info[0], "stemConv3d: input");
  const at::Tensor& weight = unwrapTensor(info[1], "stemConv3d: weight");
  const at::Tensor bias = info[2].IsNull() ? at::Tensor() : unwrapTensor(info[2], "stemConv3d: bias");
  const std::vector<int64_t> stride = intTriple(info[3], "stemConv3d", "stride"), padding = intTriple(info[4], "stemConv3d", "padding");
  return guard(env, "stemConv3d", [&]() -> Napi::Value {
    if (at::autocast::is_cpu_enabled()) return wrapTensor(env, at::conv3d(input, weight, bias, stride, padding));
    denseFloat(input, "input");
    denseFloat(weight, "weight");
    TORCH_CHECK(input.dim() == 5, "input must be N×C×D×H×W, got ", input.sizes());
    TORCH_CHECK(weight.dim() == 5 && weight.size(4) == kTapsX, "weight must be O×C×kt×kh×7, got ", weight.sizes());
    TORCH_CHECK(input.size(1) == weight.size(1), "input has ", input.size(1), " channels, the weight takes ", weight.size(1));
    TORCH_CHECK(stride[2] == 1 || stride[2] == 2, "stride along x must be 1 or 2, got ", stride[2]);
    for (int d = 0; d < 3; d++) {
      TORCH_CHECK(stride[d] >= 1 && padding[d] >= 0 && padding[d] < weight.size(2 + d), "stride must be positive and padding below the kernel, got stride ",
                  stride, " and padding ", padding, " for kernel ", weight.sizes().slice(2));
    }
    return wrapTensor(env, StemConv3d::apply(input, weight, checkedBias(bias, weight.size(0)), stride, padding));
  });
}

#endif
}  // namespace

void initStemAutograd(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (cpuHasAvx2Fma()) exports.Set("stemConv3d", Napi::Function::New(env, StemConv3dBinding, "stemConv3d"));
#endif
}

}  // namespace stcnet
