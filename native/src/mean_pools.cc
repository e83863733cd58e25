// The two means of an STC block's branches, meanPools3d(x) → [x.mean([2, 3, 4]) (N×C), x.mean([3, 4])
// (N×C×T)], as at::mean computes them, with one backward for both. libtorch's mean backward materialises
// its gradient (expand, then divide) and autograd adds each into x's other gradient: for both means, four
// passes over a block-sized tensor (≈ 5 ms of a 4×256×4×28² bf16 block's 7 ms backward, 6% of
// STC-ResNet-50's training step). Here x's gradient is the broadcast of gradT/(T·H·W) + gradS/(H·W), a
// view of a small N×C×T tensor that x's other gradient absorbs in one addition.
#include "handle.h"

#include <torch/csrc/autograd/custom_function.h>

namespace stcnet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct MeanPools3d : public torch::autograd::Function<MeanPools3d> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    return {at::mean(x, {2, 3, 4}), at::mean(x, {3, 4})};
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradients) {
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const at::Tensor &gradClip = gradients[0], &gradFrames = gradients[1];
    if (!gradClip.defined() && !gradFrames.defined()) return {at::Tensor()};
    const int64_t frame = sizes[3] * sizes[4];
    const at::Tensor& any = gradFrames.defined() ? gradFrames : gradClip;
    const auto dtype = any.scalar_type();
    // Summed in float for float32 and narrower dtypes, in the gradient's own dtype for float64.
    const auto sumType = dtype == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor small = at::zeros({sizes[0], sizes[1], sizes[2]}, any.options().dtype(sumType));
    if (gradFrames.defined()) small.add_(gradFrames.to(sumType), 1.0 / static_cast<double>(frame));
    if (gradClip.defined()) small.add_(gradClip.to(sumType).unsqueeze(2), 1.0 / static_cast<double>(frame * sizes[2]));
    return {small.to(dtype).view({sizes[0], sizes[1], sizes[2], 1, 1}).expand(sizes)};
  }
};

// meanPools3d(x): [x.mean([2, 3, 4]), x.mean([3, 4])] for an N×C×T×H×W x.
Napi::Value MeanPools3dBinding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 1) throw Napi::TypeError::New(env, "meanPools3d: expected (x)");
  const at::Tensor& x = unwrapTensor(info[0], "meanPools3d: x");
  return guard(env, "meanPools3d", [&]() -> Napi::Value {
    TORCH_CHECK(x.dim() == 5, "x must be N×C×T×H×W, got ", x.sizes());
    const variable_list means = MeanPools3d::apply(x);
    Napi::Array result = Napi::Array::New(env, 2);
    result.Set(0u, wrapTensor(env, means[0]));
    result.Set(1u, wrapTensor(env, means[1]));
    return result;
  });
}

}  // namespace

void initMeanPools(Napi::Env env, Napi::Object exports) {
  exports.Set("meanPools3d", Napi::Function::New(env, MeanPools3dBinding, "meanPools3d"));
}

}  // namespace stcnet
