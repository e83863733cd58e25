// Winograd convolutions F(2×2×2, 3×3×3) for the inference mode (issue 9): weights transformed once,
// activations in oneDNN's blocked layout, bias, residual and ReLU fused into the output transform. The
// kernels and the algorithm are in winograd_kernels.h. Needs AVX2 and FMA (checked at load time: the
// class is exported only where the CPU has them).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include "winograd_kernels.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

using namespace winograd;

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
      convolve(transformed_.data_ptr<float>(), bias_.defined() ? bias_.data_ptr<float>() : nullptr, in_, out_, x, y, input.size(0), residual != nullptr,
               relu, scratch_);
      if (inPlace) return wrapTensor(env, *residual);
      return wrapTensor(env, at::native::new_with_itensor_mkldnn(std::move(result), at::kFloat, input.device()));
    });
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
  Scratch scratch_;  // V then M: of one chunk per thread, or of all tiles
};

#endif
}  // namespace

void initWinograd(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (!cpuHasAvx2Fma()) return;
  exports.Set("WinogradConvolution", WinogradConvolution::Define(env));
  // Which instruction set the transformed-domain products of the inference and training kernels use.
  exports.Set("winogradProductIsa", Napi::String::New(env, cpuUsesAvx512() ? "avx512" : "avx2"));
#endif
}

}  // namespace stcnet
