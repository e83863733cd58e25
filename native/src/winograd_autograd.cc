// The Winograd convolution for training: winogradConv3d(input, weight, bias|null) on dense float32
// tensors, recorded by autograd. Forward, the input gradient (the same convolution of the output
// gradient with the weights flipped and transposed) and the weight gradient (winograd_kernels.h's
// weightGradient) all run in Winograd's transformed domain, where libtorch's direct kernels do 3.4×
// the multiply-adds (blocked_autograd.h records them). Under CPU autocast it is the autocast
// convolution instead, so that bf16 training keeps its precision choice.
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/autocast_mode.h>
#include "blocked_autograd.h"
#include "winograd_kernels.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

// One thread's scratch, kept between calls (every layer's forward and backward share it): the
// convolutions' and the weight gradients' apart, since their sizes differ and each would reallocate the other.
winograd::Scratch& convolutionScratch() {
  thread_local winograd::Scratch scratch;
  return scratch;
}

winograd::Scratch& gradientScratch() {
  thread_local winograd::Scratch scratch;
  return scratch;
}

// Winograd's forward, input gradient and weight gradient (winograd_kernels.h).
struct WinogradKernels {
  static at::Tensor convolve(const Blocked& x, int64_t samples, const at::Tensor& weight, const at::Tensor& bias) {
    ideep::tensor result(blockedDesc({samples, weight.size(0), x.depth, x.height, x.width}, x.block));
    const at::Tensor transformed = winograd::transformWeights(weight);
    winograd::convolve(transformed.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, weight.size(1), weight.size(0), x,
                       blockedView(result), samples, false, false, convolutionScratch());
    return denseCopy(result);
  }
  static at::Tensor inputGradientWeights(const at::Tensor& weight) { return weight.flip({2, 3, 4}).transpose(0, 1).contiguous(); }
  static at::Tensor weightGradient(const Blocked& input, const Blocked& gradOutput, int64_t samples) {
    return winograd::weightGradient(input, gradOutput, samples, gradientScratch());
  }
};

// winogradConv3d(input, weight, bias|null): conv3d(input, weight, bias, stride 1, padding 1) for a
//   3×3×3 weight of Cout×Cin channels, both multiples of 16 (so that the input gradient, whose weights
//   are Cin×Cout, runs in the same kernels).
Napi::Value WinogradConv3dBinding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 3) throw Napi::TypeError::New(env, "winogradConv3d: expected (input, weight, bias|null)");
  const at::Tensor& input = unwrapTensor(info[0], "winogradConv3d: input");
  const at::Tensor& weight = unwrapTensor(info[1], "winogradConv3d: weight");
  const at::Tensor bias = info[2].IsNull() ? at::Tensor() : unwrapTensor(info[2], "winogradConv3d: bias");
  return guard(env, "winogradConv3d", [&]() -> Napi::Value {
    if (at::autocast::is_cpu_enabled()) return wrapTensor(env, at::conv3d(input, weight, bias, 1, 1));
    denseFloat(input, "input");
    denseFloat(weight, "weight");
    TORCH_CHECK(input.dim() == 5, "input must be N×C×D×H×W, got ", input.sizes());
    TORCH_CHECK(weight.dim() == 5 && weight.size(2) == 3 && weight.size(3) == 3 && weight.size(4) == 3 && weight.size(0) % 16 == 0 &&
                    weight.size(1) % 16 == 0,
                "weight must be Cout×Cin×3×3×3 with both channel counts multiples of 16, got ", weight.sizes());
    TORCH_CHECK(input.size(1) == weight.size(1), "input has ", input.size(1), " channels, the weight takes ", weight.size(1));
    return wrapTensor(env, BlockedConv3d<WinogradKernels>::apply(input, weight, checkedBias(bias, weight.size(0))));
  });
}

#endif
}  // namespace

void initWinogradAutograd(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (cpuHasAvx2Fma()) exports.Set("winogradConv3d", Napi::Function::New(env, WinogradConv3dBinding, "winogradConv3d"));
#endif
}

}  // namespace stcnet
