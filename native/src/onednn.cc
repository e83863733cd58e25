// oneDNN fusions on MKLDNN tensors for the inference mode (issue 9): a convolution whose residual sum
// and ReLU run in its own pass over the output (oneDNN's sum and eltwise post-ops; libtorch 1.13 has
// them only for prepacked 2D convolutions, PyTorch 2.0 added `mkldnn::_convolution_pointwise`), and
// dense views of blocked tensors. Calls oneDNN through ideep, the header-only wrapper libtorch itself
// is built with, on the same system libdnnl. Built only where those headers are found (STCNET_ONEDNN).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/core/LegacyTypeDispatch.h>
#include <ideep.hpp>

namespace at {
namespace native {
// Exported by libtorch_cpu (ATen/native/mkldnn/MKLDNNCommon.h, which Debian's libtorch-dev leaves out).
ideep::tensor& itensor_from_mkldnn(const Tensor& mkldnn_tensor);
ideep::tensor itensor_view_from_dense(const Tensor& tensor);
Tensor new_with_itensor_mkldnn(ideep::tensor&& it, c10::optional<ScalarType> dtype, c10::optional<Device> device);
}  // namespace native
}  // namespace at
#endif

namespace stcnet {
namespace {

#ifdef STCNET_ONEDNN
std::vector<int64_t> intList(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string(what) + ": expected an array of integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> list(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) list[i] = array.Get(i).As<Napi::Number>().Int64Value();
  return list;
}

// mkldnnConvAddRelu(input, weight, bias|null, stride[], padding[], dilation[], groups, residual)
//   -> ReLU(conv(input) + residual): input and residual MKLDNN tensors, weight packed by
//   aten::mkldnn_reorder_conv{2,3}d_weight, bias dense float32 or null. Written into residual's buffer
//   when its layout is the convolution's output layout (the result then shares it), else into a
//   reordered copy of residual.
Napi::Value ConvAddRelu(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 8) throw Napi::TypeError::New(env, "mkldnnConvAddRelu: expected 8 arguments");
  const at::Tensor& input = unwrapTensor(info[0], "mkldnnConvAddRelu: input");
  const at::Tensor& weight = unwrapTensor(info[1], "mkldnnConvAddRelu: weight");
  const at::Tensor* bias = info[2].IsNull() ? nullptr : &unwrapTensor(info[2], "mkldnnConvAddRelu: bias");
  auto stride = intList(env, info[3], "mkldnnConvAddRelu: stride");
  auto padding = intList(env, info[4], "mkldnnConvAddRelu: padding");
  auto dilation = intList(env, info[5], "mkldnnConvAddRelu: dilation");
  auto groups = info[6].As<Napi::Number>().Int64Value();
  const at::Tensor& residual = unwrapTensor(info[7], "mkldnnConvAddRelu: residual");

  return guard(env, "mkldnnConvAddRelu", [&]() -> Napi::Value {
    TORCH_CHECK(input.is_mkldnn() && weight.is_mkldnn() && residual.is_mkldnn(), "input, weight and residual must be MKLDNN tensors");
    const auto spatial = input.dim() - 2;
    TORCH_CHECK(spatial == 2 || spatial == 3, "expected a 4-D or 5-D input, got ", input.dim(), "-D");
    TORCH_CHECK(static_cast<int64_t>(stride.size()) == spatial && static_cast<int64_t>(padding.size()) == spatial &&
                static_cast<int64_t>(dilation.size()) == spatial, "stride, padding and dilation need one value per spatial dimension");
    // Runs as a kernel would, below autograd: MKLDNN tensors carry no autograd history.
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    const ideep::tensor& x = at::native::itensor_from_mkldnn(input);
    const ideep::tensor& w = at::native::itensor_from_mkldnn(weight);
    const at::Tensor biasDense = bias ? bias->contiguous() : at::Tensor();
    ideep::tensor b;  // empty: no bias
    if (bias) b = at::native::itensor_view_from_dense(biasDense);

    // Output size as aten::convolution computes it; the packed weight's dims are O, I/groups, k...
    ideep::dims dstDims = {input.size(0), weight.size(0)};
    for (int64_t d = 0; d < spatial; d++) {
      const int64_t kernel = weight.size(d + 2);
      dstDims.push_back((input.size(d + 2) + 2 * padding[d] - dilation[d] * (kernel - 1) - 1) / stride[d] + 1);
    }
    TORCH_CHECK(residual.sizes() == c10::IntArrayRef(dstDims), "residual shape ", residual.sizes(),
                " differs from the convolution's output ", c10::IntArrayRef(dstDims));
    ideep::tensor y = at::native::itensor_from_mkldnn(residual);  // shares residual's buffer
    ideep::convolution_forward_params params;
    // ideep takes ATen's dilation (1: none) and converts it to oneDNN's (0: none).
    ideep::convolution_forward::prepare(params, x, w, b, dstDims, y, stride, dilation, padding, padding, groups,
                                        ideep::scale_t(), ideep::scale_t(), ideep::scale_t(), ideep::attr_t::residual());
    const bool inPlace = y.get_desc() == params.pd.dst_desc();
    // The sum post-op reads the output buffer: a residual in another layout is reordered into a new one.
    if (!inPlace) y = y.reorder_if_differ_in(params.pd.dst_desc());
    ideep::convolution_forward::compute(params, x, w, b, y);
    if (inPlace) return wrapTensor(env, residual);
    return wrapTensor(env, at::native::new_with_itensor_mkldnn(std::move(y), input.scalar_type(), input.device()));
  });
}

// mkldnnDenseView(t) -> a dense float tensor over an MKLDNN tensor's memory (no copy; it keeps t's
// buffer alive): N×C×... as strided for a plain layout, N×(C/b)×...×b for oneDNN's channel-blocked
// layouts (nChw8c, nCdhw16c, ...). ATen's dense kernels then pool and merge in the blocked layout
// (the STC gate), instead of converting whole tensors out of it and back. Throws for other layouts
// and for padded channel blocks.
Napi::Value DenseView(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const at::Tensor& tensor = unwrapTensor(info[0], "mkldnnDenseView: tensor");
  return guard(env, "mkldnnDenseView", [&]() -> Napi::Value {
    TORCH_CHECK(tensor.is_mkldnn() && tensor.scalar_type() == at::kFloat, "expected a float32 MKLDNN tensor");
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    const ideep::tensor& it = at::native::itensor_from_mkldnn(tensor);
    const dnnl_memory_desc_t& md = it.get_desc().data;
    TORCH_CHECK(md.format_kind == dnnl_blocked, "not a blocked memory format");
    const auto& blocking = md.format_desc.blocking;
    std::vector<int64_t> sizes(md.dims, md.dims + md.ndims), strides(blocking.strides, blocking.strides + md.ndims);
    for (int d = 0; d < md.ndims; d++) TORCH_CHECK(md.padded_dims[d] == md.dims[d], "padded dimension ", d);
    if (blocking.inner_nblks == 1 && blocking.inner_idxs[0] == 1) {
      const int64_t block = blocking.inner_blks[0];
      sizes[1] /= block;
      sizes.push_back(block);
      strides.push_back(1);
    } else {
      TORCH_CHECK(blocking.inner_nblks == 0, "a layout blocked other than by channels");
    }
    auto* data = static_cast<float*>(it.get_data_handle()) + md.offset0;
    at::Tensor owner = tensor;  // the view's deleter holds the MKLDNN tensor, so its buffer outlives the view
    return wrapTensor(env, at::from_blob(data, sizes, strides, [owner](void*) mutable { owner.reset(); },
                                         at::TensorOptions().dtype(at::kFloat)));
  });
}
#endif

}  // namespace

void initOneDnn(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  exports.Set("mkldnnConvAddRelu", Napi::Function::New(env, ConvAddRelu, "mkldnnConvAddRelu"));
  exports.Set("mkldnnDenseView", Napi::Function::New(env, DenseView, "mkldnnDenseView"));
#endif
}

}  // namespace stcnet
