// The grouped convolution for training: groupedConv3d(input, weight, bias|null) on dense float32
// tensors, in groups of 4 channels (ResNeXt-101's first stage), recorded by autograd. Forward, the input
// gradient (the same convolution of the output gradient with each group's weights transposed and
// flipped) and the weight gradient run in grouped_kernels.h's AVX2 kernels, where oneDNN 2.6 runs such
// groups at ≈ 10 GFLOP/s in all three passes (blocked_autograd.h records them). Under CPU autocast it
// is the autocast convolution instead, so that bf16 training keeps its precision choice.
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/autocast_mode.h>
#include "blocked_autograd.h"
#include "grouped_kernels.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

// grouped_kernels.h's passes; the input gradient's weights are each group's transposed and flipped.
struct GroupedKernels {
  static at::Tensor convolve(const Blocked& x, int64_t samples, const at::Tensor& weight, const at::Tensor& bias) {
    ideep::tensor result(blockedDesc({samples, x.channels, x.depth, x.height, x.width}, x.block));
    const at::Tensor packed = grouped::packWeights(weight);
    grouped::convolve(x, blockedView(result), packed.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, samples, false);
    return denseCopy(result);
  }
  static at::Tensor inputGradientWeights(const at::Tensor& weight) { return grouped::transposedWeights(weight); }
  static at::Tensor weightGradient(const Blocked& input, const Blocked& gradOutput, int64_t samples) {
    return grouped::weightGradient(input, gradOutput, samples);
  }
};

// groupedConv3d(input, weight, bias|null): conv3d(input, weight, bias, stride 1, padding 1, groups C/4)
//   for input channels C (a multiple of 8) and a weight C×4×3×3×3.
Napi::Value GroupedConv3dBinding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 3) throw Napi::TypeError::New(env, "groupedConv3d: expected (input, weight, bias|null)");
  const at::Tensor& input = unwrapTensor(info[0], "groupedConv3d: input");
  const at::Tensor& weight = unwrapTensor(info[1], "groupedConv3d: weight");
  const at::Tensor bias = info[2].IsNull() ? at::Tensor() : unwrapTensor(info[2], "groupedConv3d: bias");
  return guard(env, "groupedConv3d", [&]() -> Napi::Value {
    const int64_t groups = weight.dim() == 5 ? weight.size(0) / grouped::kGroupWidth : 0;
    if (at::autocast::is_cpu_enabled()) return wrapTensor(env, at::conv3d(input, weight, bias, 1, 1, 1, groups));
    denseFloat(input, "input");
    denseFloat(weight, "weight");
    TORCH_CHECK(input.dim() == 5, "input must be N×C×D×H×W, got ", input.sizes());
    TORCH_CHECK(weight.dim() == 5 && weight.size(1) == grouped::kGroupWidth && weight.size(2) == 3 && weight.size(3) == 3 && weight.size(4) == 3 &&
                    weight.size(0) % grouped::kLanes == 0,
                "weight must be C×4×3×3×3 (groups of 4 channels) with C a multiple of 8, got ", weight.sizes());
    TORCH_CHECK(input.size(1) == weight.size(0), "input has ", input.size(1), " channels, the weight takes ", weight.size(0));
    return wrapTensor(env, BlockedConv3d<GroupedKernels>::apply(input, weight, checkedBias(bias, weight.size(0))));
  });
}

#endif
}  // namespace

void initGroupedAutograd(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (cpuHasAvx2Fma()) exports.Set("groupedConv3d", Napi::Function::New(env, GroupedConv3dBinding, "groupedConv3d"));
#endif
}

}  // namespace stcnet
