// What onednn.cc, winograd*.cc and grouped*.cc share: libtorch's bridge between MKLDNN tensors and ideep
// tensors, the view of a channel-blocked oneDNN layout as plain arrays, and the CPU check of the AVX2
// kernels. Only with STCNET_ONEDNN.
#pragma once
#include <cstdlib>
#include <string>
#ifdef STCNET_ONEDNN
#include <ATen/core/LegacyTypeDispatch.h>
#include <ideep.hpp>
#include "handle.h"

namespace at {
namespace native {
// Exported by libtorch_cpu (ATen/native/mkldnn/MKLDNNCommon.h, which Debian's libtorch-dev leaves out).
ideep::tensor& itensor_from_mkldnn(const Tensor& mkldnn_tensor);
ideep::tensor itensor_view_from_dense(const Tensor& tensor);
Tensor new_with_itensor_mkldnn(ideep::tensor&& it, c10::optional<ScalarType> dtype, c10::optional<Device> device);
}  // namespace native
}  // namespace at

namespace stcnet {

// The blocked layout of an MKLDNN tensor N×C×S... as N×(C/b)×S×b, if it is exactly that (b = 1: plain).
struct ChannelBlocks {
  float* data;
  int64_t samples, blocks, positions, block;
};

// A layout blocked by channels (or plain), of float32 or bf16 values: `data` points at the first.
struct ChannelLayout {
  void* data;
  bool bf16;
  int64_t samples, blocks, positions, block;
};

inline ChannelLayout channelLayout(const ideep::tensor& it) {
  const dnnl_memory_desc_t& md = it.get_desc().data;
  TORCH_CHECK(md.format_kind == dnnl_blocked && (md.data_type == dnnl_f32 || md.data_type == dnnl_bf16),
              "expected a float32 or bf16 tensor in a blocked memory format");
  const auto& blocking = md.format_desc.blocking;
  TORCH_CHECK(blocking.inner_nblks == 0 || (blocking.inner_nblks == 1 && blocking.inner_idxs[0] == 1), "a layout blocked other than by channels");
  const int64_t block = blocking.inner_nblks == 0 ? 1 : blocking.inner_blks[0];
  for (int d = 0; d < md.ndims; d++) TORCH_CHECK(md.padded_dims[d] == md.dims[d], "padded dimension ", d);
  TORCH_CHECK(md.dims[1] % block == 0, "channels not whole blocks");
  // Canonical order: N, C/b, then the spatial dimensions, each packed after the next.
  int64_t expected = block;
  for (int d = md.ndims - 1; d >= 2; d--) {
    TORCH_CHECK(blocking.strides[d] == expected, "spatial dimensions not packed in order");
    expected *= md.dims[d];
  }
  const int64_t positions = expected / block;
  TORCH_CHECK(blocking.strides[1] == expected && blocking.strides[0] == expected * (md.dims[1] / block), "not in N, C order");
  const bool bf16 = md.data_type == dnnl_bf16;
  char* first = static_cast<char*>(it.get_data_handle()) + md.offset0 * (bf16 ? 2 : 4);
  return {first, bf16, md.dims[0], md.dims[1] / block, positions, block};
}

inline ChannelBlocks channelBlocks(const ideep::tensor& it) {
  const ChannelLayout layout = channelLayout(it);
  TORCH_CHECK(!layout.bf16, "expected a float32 tensor in a blocked memory format");
  return {static_cast<float*>(layout.data), layout.samples, layout.blocks, layout.positions, layout.block};
}

// A convolution's bias as the kernels read it: a contiguous dense float32 tensor of `channels` values
// (undefined stays undefined: no bias).
inline at::Tensor denseBias(const at::Tensor& bias, int64_t channels) {
  if (!bias.defined()) return bias;
  TORCH_CHECK(!bias.is_mkldnn() && bias.scalar_type() == at::kFloat && bias.numel() == channels,
              "bias must be a dense float32 tensor of ", channels, " values");
  return bias.contiguous();
}

// Whether this CPU runs the AVX2 and FMA kernels of winograd.cc and grouped.cc.
inline bool cpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Whether this CPU runs the AVX-512 matrix products of winograd_kernels.h: where it has AVX-512F,
// unless STCNET_AVX512=0 asks for the AVX2 ones (which the tests compare them with). On CPUs with
// full-width AVX-512 units (AMD Zen 5, Intel server cores) they do twice the multiply-adds per cycle.
inline bool cpuUsesAvx512() {
  static const bool uses = [] {
    __builtin_cpu_init();
    const char* setting = std::getenv("STCNET_AVX512");
    return __builtin_cpu_supports("avx512f") && !(setting && std::string(setting) == "0");
  }();
  return uses;
}

// One input or output tensor's blocked memory: element (n, c, z, y, x) at
// data + ((n·C/block + c/block)·positions + (z·H + y)·W + x)·block + c%block.
struct Blocked {
  float* data;
  int64_t channels, depth, height, width, block;
  // Element (n, c, 0, 0, 0); the others are at strides of (H·W·block, W·block, block) from it.
  float* origin(int64_t n, int64_t c) const {
    return data + (n * (channels / block) + c / block) * depth * height * width * block + c % block;
  }
};

// The channel block of a tensor in oneDNN's canonical blocked-by-channels layout; 0 for any other layout.
inline int64_t channelBlockOf(const ideep::tensor& t) {
  const auto& md = t.get_desc().data;
  const auto& blocking = md.format_desc.blocking;
  if (md.format_kind != dnnl_blocked || blocking.inner_nblks != 1 || blocking.inner_idxs[0] != 1) return 0;
  try {
    return channelBlocks(t).block;
  } catch (const c10::Error&) {
    return 0;  // blocked by channels but not in the canonical order
  }
}

// A 5-D float32 layout blocked by 8 or 16 channels.
inline ideep::tensor::desc blockedDesc(const ideep::dims& dims, int64_t block) {
  return ideep::tensor::desc(dims, ideep::data_type::f32, block == 16 ? ideep::format_tag::nCdhw16c : ideep::format_tag::nCdhw8c);
}

// t's memory as a Blocked view, reordered first into blocks of 8 channels unless it is blocked by 8 or 16.
inline Blocked blockedView(ideep::tensor& t) {
  int64_t block = channelBlockOf(t);
  const auto dims = t.get_dims();
  if (block != 8 && block != 16) {
    block = 8;
    t = t.reorder_if_differ_in(blockedDesc(dims, block));
  }
  const ChannelBlocks view = channelBlocks(t);
  return {view.data, dims[1], dims[2], dims[3], dims[4], block};
}

// The training convolutions' bridge (winograd_autograd.cc, grouped_autograd.cc): their kernels read
// and write the blocked layout, autograd sees dense tensors.

inline const at::Tensor& denseFloat(const at::Tensor& tensor, const char* what) {
  TORCH_CHECK(!tensor.is_mkldnn() && tensor.device().is_cpu() && tensor.scalar_type() == at::kFloat, what, " must be a dense float32 CPU tensor, got ",
              describeTensor(tensor));
  return tensor;
}

// A training convolution's bias argument (undefined: none), checked against its `channels` outputs.
inline c10::optional<at::Tensor> checkedBias(const at::Tensor& bias, int64_t channels) {
  if (!bias.defined()) return c10::nullopt;
  denseFloat(bias, "bias");
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == channels, "bias must have ", channels, " values, got ", bias.sizes());
  return bias;
}

// A dense float32 N×C×D×H×W tensor as a Blocked view: `holder` keeps the blocked copy alive.
inline Blocked blockedCopy(const at::Tensor& dense, ideep::tensor& holder) {
  holder = at::native::itensor_view_from_dense(dense);
  return blockedView(holder);
}

// A blocked result as a fresh dense tensor of the same dims.
inline at::Tensor denseCopy(const ideep::tensor& blocked) {
  const ideep::dims dims = blocked.get_dims();
  at::Tensor dense = at::empty(std::vector<int64_t>(dims.begin(), dims.end()), at::kFloat);
  ideep::tensor view = at::native::itensor_view_from_dense(dense);
  blocked.reorder_to(view);
  return dense;
}

}  // namespace stcnet
#endif
