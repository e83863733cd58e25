// A grouped 3×3×3 convolution with 4 channels per group on oneDNN's blocked layout, for the inference
// mode (issue 9): weights packed once. The kernels and why they beat oneDNN here are in
// grouped_kernels.h. Needs AVX2 and FMA (checked at load time: the class is exported only where the CPU
// has them).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include "grouped_kernels.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

using namespace grouped;

// GroupedConvolution(weight, bias|null): a 3×3×3 convolution at stride 1, padding 1, in groups of 4
//   channels, from its dense float32 weight C×4×3×3×3 (C a multiple of 8).
//   forward(input, relu) -> MKLDNN result in input's channel blocking (8 or 16): conv(input) + bias, then
//   ReLU when relu is true.
class GroupedConvolution : public Napi::ObjectWrap<GroupedConvolution> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GroupedConvolution", {
      InstanceMethod<&GroupedConvolution::Forward>("forward"),
      InstanceMethod<&GroupedConvolution::Release>("release"),
    });
  }

  explicit GroupedConvolution(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupedConvolution>(info) {
    auto env = info.Env();
    if (info.Length() != 2) throw Napi::TypeError::New(env, "GroupedConvolution: expected (weight, bias|null)");
    const at::Tensor& weight = unwrapTensor(info[0], "GroupedConvolution: weight");
    if (!info[1].IsNull()) bias_ = unwrapTensor(info[1], "GroupedConvolution: bias");
    guard(env, "GroupedConvolution", [&] {
      TORCH_CHECK(!weight.is_mkldnn() && weight.scalar_type() == at::kFloat && weight.dim() == 5 && weight.size(1) == kGroupWidth &&
                  weight.size(2) == 3 && weight.size(3) == 3 && weight.size(4) == 3,
                  "weight must be a dense float32 tensor C×4×3×3×3 (groups of 4 channels), got ", weight.sizes());
      TORCH_CHECK(weight.size(0) % kLanes == 0, "needs channels in multiples of ", kLanes, ", got ", weight.size(0));
      channels_ = weight.size(0);
      bias_ = denseBias(bias_, channels_);
      if (bias_.defined()) bias_ = bias_.clone();  // prepared once, like the weights: later changes to the caller's bias are not seen
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      packed_ = packWeights(weight);
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (info.Length() != 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "GroupedConvolution.forward: expected (input, relu)");
    const at::Tensor& input = unwrapTensor(info[0], "GroupedConvolution.forward: input");
    const bool relu = info[1].As<Napi::Boolean>().Value();
    return guard(env, "GroupedConvolution.forward", [&]() -> Napi::Value {
      TORCH_CHECK(packed_.defined(), "used after release()");
      TORCH_CHECK(input.is_mkldnn() && input.scalar_type() == at::kFloat && input.dim() == 5, "input must be a 5-D float32 MKLDNN tensor");
      TORCH_CHECK(input.size(1) == channels_, "input has ", input.size(1), " channels, the weight takes ", channels_);
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      ideep::tensor source = at::native::itensor_from_mkldnn(input);
      const Blocked x = blockedView(source);
      ideep::tensor result(blockedDesc(source.get_dims(), x.block));
      const Blocked y = blockedView(result);
      convolve(x, y, packed_.data_ptr<float>(), bias_.defined() ? bias_.data_ptr<float>() : nullptr, input.size(0), relu);
      return wrapTensor(env, at::native::new_with_itensor_mkldnn(std::move(result), at::kFloat, input.device()));
    });
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    packed_.reset();
    bias_.reset();
    return info.Env().Undefined();
  }

  int64_t channels_ = 0;
  at::Tensor packed_;  // [C/8][27][4][8]
  at::Tensor bias_;
};

#endif
}  // namespace

void initGrouped(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  if (cpuHasAvx2Fma()) exports.Set("GroupedConvolution", GroupedConvolution::Define(env));
#endif
}

}  // namespace stcnet
