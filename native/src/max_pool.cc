// 3D max pooling for dense CPU tensors, float32 and bf16, with its gradient: maxPool3d(input, kernel,
// stride, padding). libtorch 1.13's max_pool3d takes 86 ms forward and 141 ms backward for the stem's
// [8, 64, 16, 56, 56] at 2 threads (a third of STC-ResNet-18's bf16 training step), has no bf16 kernel
// (autocast pools in float32, with a cast each way) and keeps an int64 index per output.
//
// A window's maximum is found one axis at a time: along t over whole frames, then along y over rows (both
// contiguous), then along x, where the taps are strided, on what is left. Each candidate carries its
// offset in the window, (t·kh + y)·kw + x, and of equal values the lower offset wins, so the position found
// is the first in (t, y, x) order, as libtorch's kernel picks among ties (a NaN wins, as there). The offset
// is kept (an int16 per output) for the backward pass, which adds each output's gradient to that input, in
// float for bf16 and cast once per plane.
#include "handle.h"

#pragma GCC optimize("O3")

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace stcnet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PoolGeometry {
  int64_t planes;       // samples × channels
  int64_t in[3], out[3];  // (t, y, x) sizes
  int64_t kernel[3], stride[3], padding[3];
  int64_t inPlane() const { return in[0] * in[1] * in[2]; }
  int64_t outPlane() const { return out[0] * out[1] * out[2]; }
};

// Whether a candidate replaces the best so far: a greater value, an equal one earlier in the window (a
// lower code; each pass meets its candidates in another order than libtorch's scan), or a NaN over a number.
inline bool beats(float value, int32_t code, float best, int32_t bestCode) {
  return (value > best) | ((value == best) & (code < bestCode)) | ((value != value) & (best == best));  // | not ||: no branches
}

// The first in-bounds tap of output `o` along an axis, and one past the last.
struct Taps {
  int64_t origin, first, last;
  Taps(int64_t o, int64_t size, int64_t kernel, int64_t stride, int64_t padding)
      : origin(o * stride - padding), first(std::max<int64_t>(0, padding - o * stride)), last(std::min(kernel, size - origin)) {}
};

// One plane (sample, channel): along t first, over whole frames; then along y over rows; then along x,
// where the taps are strided, on a quarter of the input (at stride 2). The code of a tap (t, y, x) in the
// window is (t·kh + y)·kw + x, so a lower code is earlier in libtorch's scan.
template <typename T>
void poolPlane(const T* x, T* y, int16_t* code, const PoolGeometry& g, std::vector<float>& frameMax, std::vector<int32_t>& frameCode,
               std::vector<float>& rowMax, std::vector<int32_t>& rowCode) {
  const int64_t H = g.in[1], W = g.in[2], OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t kh = g.kernel[1], kw = g.kernel[2], frame = H * W;
  // Along t: frameMax[ot][y][x].
  for (int64_t ot = 0; ot < OD; ot++) {
    const Taps taps(ot, g.in[0], g.kernel[0], g.stride[0], g.padding[0]);
    float* best = frameMax.data() + ot * frame;
    int32_t* bestCode = frameCode.data() + ot * frame;
    const T* source = x + (taps.origin + taps.first) * frame;
    const int32_t firstCode = static_cast<int32_t>(taps.first * kh * kw);
    for (int64_t p = 0; p < frame; p++) best[p] = static_cast<float>(source[p]), bestCode[p] = firstCode;
    for (int64_t j = taps.first + 1; j < taps.last; j++) {
      source = x + (taps.origin + j) * frame;
      const int32_t candidate = static_cast<int32_t>(j * kh * kw);
      for (int64_t p = 0; p < frame; p++) {
        const float value = static_cast<float>(source[p]);
        const bool take = (value > best[p]) | ((value != value) & (best[p] == best[p]));  // codes rise with j: the first stays
        best[p] = take ? value : best[p];
        bestCode[p] = take ? candidate : bestCode[p];
      }
    }
  }
  // Along y: rowMax[ot][oy][x].
  for (int64_t ot = 0; ot < OD; ot++) {
    for (int64_t oy = 0; oy < OH; oy++) {
      const Taps taps(oy, H, kh, g.stride[1], g.padding[1]);
      float* best = rowMax.data() + (ot * OH + oy) * W;
      int32_t* bestCode = rowCode.data() + (ot * OH + oy) * W;
      const float* values = frameMax.data() + ot * frame + (taps.origin + taps.first) * W;
      const int32_t* codes = frameCode.data() + ot * frame + (taps.origin + taps.first) * W;
      for (int64_t p = 0; p < W; p++) best[p] = values[p], bestCode[p] = codes[p] + static_cast<int32_t>(taps.first * kw);
      for (int64_t i = taps.first + 1; i < taps.last; i++) {
        values = frameMax.data() + ot * frame + (taps.origin + i) * W;
        codes = frameCode.data() + ot * frame + (taps.origin + i) * W;
        const int32_t offset = static_cast<int32_t>(i * kw);
        for (int64_t p = 0; p < W; p++) {
          const float value = values[p];
          const int32_t candidate = codes[p] + offset;
          const bool take = beats(value, candidate, best[p], bestCode[p]);
          best[p] = take ? value : best[p];
          bestCode[p] = take ? candidate : bestCode[p];
        }
      }
    }
  }
  // Along x: the output and its code.
  for (int64_t row = 0; row < OD * OH; row++) {
    const float* values = rowMax.data() + row * W;
    const int32_t* codes = rowCode.data() + row * W;
    for (int64_t ox = 0; ox < OW; ox++) {
      const Taps taps(ox, W, kw, g.stride[2], g.padding[2]);
      float best = values[taps.origin + taps.first];
      int32_t bestCode = codes[taps.origin + taps.first] + static_cast<int32_t>(taps.first);
      for (int64_t l = taps.first + 1; l < taps.last; l++) {
        const int32_t candidate = codes[taps.origin + l] + static_cast<int32_t>(l);
        if (beats(values[taps.origin + l], candidate, best, bestCode)) best = values[taps.origin + l], bestCode = candidate;
      }
      y[row * OW + ox] = static_cast<T>(best);
      code[row * OW + ox] = static_cast<int16_t>(bestCode);
    }
  }
}

template <typename T>
void pool(const at::Tensor& input, at::Tensor& output, at::Tensor& codes, const PoolGeometry& g) {
  const T* x = input.data_ptr<T>();
  T* y = output.data_ptr<T>();
  int16_t* code = codes.data_ptr<int16_t>();
  at::parallel_for(0, g.planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> frameMax(g.out[0] * g.in[1] * g.in[2]), rowMax(g.out[0] * g.out[1] * g.in[2]);
    std::vector<int32_t> frameCode(frameMax.size()), rowCode(rowMax.size());
    for (int64_t plane = begin; plane < end; plane++) {
      poolPlane(x + plane * g.inPlane(), y + plane * g.outPlane(), code + plane * g.outPlane(), g, frameMax, frameCode, rowMax, rowCode);
    }
  });
}

// Each output's gradient added to the input its maximum came from.
template <typename T>
void unpool(const at::Tensor& gradOutput, const at::Tensor& codes, at::Tensor& gradInput, const PoolGeometry& g) {
  const T* dy = gradOutput.data_ptr<T>();
  const int16_t* code = codes.data_ptr<int16_t>();
  T* dx = gradInput.data_ptr<T>();
  const int64_t OH = g.out[1], OW = g.out[2], H = g.in[1], W = g.in[2];
  // Where each code's tap lies from its window's corner, in the input plane.
  std::vector<int64_t> offsets(g.kernel[0] * g.kernel[1] * g.kernel[2]);
  for (int64_t tap = 0; tap < static_cast<int64_t>(offsets.size()); tap++) {
    offsets[tap] = (tap / (g.kernel[1] * g.kernel[2]) * H + tap / g.kernel[2] % g.kernel[1]) * W + tap % g.kernel[2];
  }
  at::parallel_for(0, g.planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(std::is_same<T, float>::value ? 0 : g.inPlane());
    for (int64_t plane = begin; plane < end; plane++) {
      T* target = dx + plane * g.inPlane();
      // float32 sums straight into the gradient; bf16 ones in float, cast once.
      float* sums = std::is_same<T, float>::value ? reinterpret_cast<float*>(target) : scratch.data();
      std::fill_n(sums, g.inPlane(), 0.f);
      const T* gradient = dy + plane * g.outPlane();
      const int16_t* taps = code + plane * g.outPlane();
      for (int64_t ot = 0; ot < g.out[0]; ot++) {
        for (int64_t oy = 0; oy < OH; oy++) {
          const int64_t o = (ot * OH + oy) * OW;
          // The window's corner may lie in the padding (a negative index); its taps never do.
          const int64_t corner = ((ot * g.stride[0] - g.padding[0]) * H + oy * g.stride[1] - g.padding[1]) * W - g.padding[2];
          for (int64_t ox = 0; ox < OW; ox++) {
            sums[corner + ox * g.stride[2] + offsets[taps[o + ox]]] += static_cast<float>(gradient[o + ox]);
          }
        }
      }
      if (!std::is_same<T, float>::value) {
        for (int64_t i = 0; i < g.inPlane(); i++) target[i] = static_cast<T>(sums[i]);
      }
    }
  });
}

struct MaxPool3d : public torch::autograd::Function<MaxPool3d> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                            std::vector<int64_t> padding) {
    const at::Tensor x = input.contiguous();
    PoolGeometry g = geometry(x.sizes(), kernel, stride, padding);
    at::Tensor output = at::empty({x.size(0), x.size(1), g.out[0], g.out[1], g.out[2]}, x.options());
    at::Tensor codes = at::empty(output.sizes(), x.options().dtype(at::kShort));
    if (x.scalar_type() == at::kFloat) pool<float>(x, output, codes, g);
    else pool<c10::BFloat16>(x, output, codes, g);
    ctx->saved_data["codes"] = codes;
    ctx->saved_data["inputSizes"] = x.sizes().vec();
    ctx->saved_data["kernel"] = kernel;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradients) {
    const at::Tensor codes = ctx->saved_data["codes"].toTensor();
    const std::vector<int64_t> sizes = ctx->saved_data["inputSizes"].toIntVector();
    const PoolGeometry g = geometry(sizes, ctx->saved_data["kernel"].toIntVector(), ctx->saved_data["stride"].toIntVector(),
                                    ctx->saved_data["padding"].toIntVector());
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // no second-order gradients
    const at::Tensor gradOutput = gradients[0].contiguous();
    at::Tensor gradInput = at::empty(sizes, gradOutput.options());
    if (gradOutput.scalar_type() == at::kFloat) unpool<float>(gradOutput, codes, gradInput, g);
    else unpool<c10::BFloat16>(gradOutput, codes, gradInput, g);
    return {gradInput, at::Tensor(), at::Tensor(), at::Tensor()};
  }

  static PoolGeometry geometry(at::IntArrayRef sizes, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                               const std::vector<int64_t>& padding) {
    PoolGeometry g;
    g.planes = sizes[0] * sizes[1];
    for (int d = 0; d < 3; d++) {
      g.in[d] = sizes[2 + d];
      g.kernel[d] = kernel[d], g.stride[d] = stride[d], g.padding[d] = padding[d];
      g.out[d] = (g.in[d] + 2 * padding[d] - kernel[d]) / stride[d] + 1;
    }
    return g;
  }
};

// maxPool3d(input, kernel, stride, padding): max_pool3d without dilation or ceil mode. A dense CPU
//   N×C×T×H×W tensor of float32 or bf16 (kernel up to 31) is pooled here, the result in its dtype;
//   anything else (an MKLDNN tensor, another dtype or device) by libtorch.
Napi::Value MaxPool3dBinding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "maxPool3d: expected (input, kernel, stride, padding)");
  const at::Tensor& input = unwrapTensor(info[0], "maxPool3d: input");
  const std::vector<int64_t> kernel = intTriple(info[1], "maxPool3d", "kernel"), stride = intTriple(info[2], "maxPool3d", "stride"), padding = intTriple(info[3], "maxPool3d", "padding");
  return guard(env, "maxPool3d", [&]() -> Napi::Value {
    const bool ownKernel = input.device().is_cpu() && input.layout() == at::kStrided && input.dim() == 5 &&
                           (input.scalar_type() == at::kFloat || input.scalar_type() == at::kBFloat16) &&
                           std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k <= 31; });
    if (!ownKernel) return wrapTensor(env, at::max_pool3d(input, kernel, stride, padding));
    for (int d = 0; d < 3; d++) {
      TORCH_CHECK(kernel[d] >= 1 && stride[d] >= 1 && padding[d] >= 0 && padding[d] <= kernel[d] / 2,
                  "kernel and stride must be positive and padding at most half the kernel, got kernel ", kernel, ", stride ", stride,
                  " and padding ", padding);
      TORCH_CHECK(input.size(2 + d) + 2 * padding[d] >= kernel[d], "input ", input.sizes(), " is smaller than the kernel ", kernel, " with padding ", padding);
    }
    return wrapTensor(env, MaxPool3d::apply(input, kernel, stride, padding));
  });
}

}  // namespace

void initMaxPool(Napi::Env env, Napi::Object exports) {
  exports.Set("maxPool3d", Napi::Function::New(env, MaxPool3dBinding, "maxPool3d"));
}

}  // namespace stcnet
