// One autograd Function for stcnet's own 3×3×3 training convolutions (Winograd's and the grouped one),
// which differ only in their kernels. `Kernels` supplies, for dense float32 tensors:
//   static at::Tensor convolve(const Blocked& x, int64_t samples, const at::Tensor& weight, const at::Tensor& bias)
//     conv(x) + bias (bias may be undefined) for blocked x, as a dense tensor;
//   static at::Tensor inputGradientWeights(const at::Tensor& weight)
//     the weights whose convolution of the output gradient is the input gradient (flipped, transposed);
//   static at::Tensor weightGradient(const Blocked& input, const Blocked& gradOutput, int64_t samples).
// Activations go into oneDNN's blocked layout and back around each pass, as libtorch's own oneDNN
// convolution does; the bias gradient is a plain sum.
#pragma once

#include <torch/csrc/autograd/custom_function.h>
#include "mkldnn_common.h"

namespace stcnet {

template <typename Kernels>
struct BlockedConv3d : public torch::autograd::Function<BlockedConv3d<Kernels>> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias) {
    const at::Tensor x = input.contiguous();
    ctx->save_for_backward({x, weight});
    ctx->saved_data["bias"] = bias.has_value();  // without one there is no third edge to ask needs_input_grad about
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // ideep's views of dense tensors need it; this node records the gradient
    ideep::tensor holder;
    return Kernels::convolve(blockedCopy(x, holder), x.size(0), weight.contiguous(), bias ? bias->contiguous() : at::Tensor());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list gradients) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor &input = saved[0], &weight = saved[1];
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // no second-order gradients
    const at::Tensor gradOutput = gradients[0].contiguous();
    ideep::tensor gradHolder;
    const Blocked dy = blockedCopy(gradOutput, gradHolder);
    at::Tensor gradInput, gradWeight, gradBias;
    if (ctx->needs_input_grad(0)) gradInput = Kernels::convolve(dy, input.size(0), Kernels::inputGradientWeights(weight), at::Tensor());
    if (ctx->needs_input_grad(1)) {
      ideep::tensor inputHolder;
      gradWeight = Kernels::weightGradient(blockedCopy(input, inputHolder), dy, input.size(0));
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gradBias = gradOutput.sum({0, 2, 3, 4});
    return {gradInput, gradWeight, gradBias};
  }
};

}  // namespace stcnet
