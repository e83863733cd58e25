// A grouped 3×3×3 convolution with 4 channels per group on oneDNN's blocked layout, for the inference
// mode (issue 9). ResNeXt-101's first stage convolves 128 channels in 32 groups of 4, which oneDNN 2.6
// runs at ≈ 10 GFLOP/s on two AVX2 cores (its 8-channel groups at 86, ungrouped ones at 110–150): a
// quarter of stc_resnext3d_101's convolution time at batch 1. Here a register of 8 output channels holds
// two groups, lanes 0–3 and 4–7, which are exactly the two 128-bit halves of an AVX2 register; input
// channel k of each group is one in-lane permute of the 8 input channels away (vpermilps broadcasts
// element k within each half), so every tap is 4 permutes and 4 FMAs on whole registers.
// Needs AVX2 and FMA (checked at load time: the class is exported only where the CPU has them).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <immintrin.h>
#include "mkldnn_common.h"
#endif

namespace stcnet {
namespace {
#ifdef STCNET_ONEDNN

constexpr int64_t kGroupWidth = 4;  // channels per group
constexpr int64_t kLanes = 8;       // output channels per register: two groups
constexpr int64_t kTaps = 27;

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Adds the 4 input channels k of each group at tap `k` (weights [4 k][8 lanes]) to acc[k]: four
// independent chains, so that the FMAs do not wait on each other's latency.
inline void addTap(const float* input, const float* k, __m256* acc) {
  const __m256 v = _mm256_loadu_ps(input);
  acc[0] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x00), _mm256_loadu_ps(k), acc[0]);
  acc[1] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0x55), _mm256_loadu_ps(k + kLanes), acc[1]);
  acc[2] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xaa), _mm256_loadu_ps(k + 2 * kLanes), acc[2]);
  acc[3] = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xff), _mm256_loadu_ps(k + 3 * kLanes), acc[3]);
}

// The outputs of one row (n, z, y) for 8 output channels from `channel`, over x in [0, W), two
// positions at a time (eight accumulator chains in all).
// w: [27 taps][4 inputs k][8 lanes]; out lane l takes input channel (l / 4)·4 + k of its register.
void convolveRow(const Blocked& in, const Blocked& out, const float* w, const float* bias, int64_t n, int64_t channel, int64_t z, int64_t y,
                 bool relu) {
  const float* source = in.origin(n, channel);
  float* target = out.origin(n, channel) + (z * out.height + y) * out.width * out.block;
  const int64_t rowStride = in.width * in.block, planeStride = in.height * rowStride;
  const __m256 shift = bias ? _mm256_loadu_ps(bias + channel) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t x = 0; x < in.width; x += 2) {
    const bool pair = x + 1 < in.width;
    __m256 a[4] = {shift, zero, zero, zero}, b[4] = {shift, zero, zero, zero};
    for (int64_t dz = 0; dz < 3; dz++) {
      const int64_t sz = z + dz - 1;
      if (sz < 0 || sz >= in.depth) continue;
      for (int64_t dy = 0; dy < 3; dy++) {
        const int64_t sy = y + dy - 1;
        if (sy < 0 || sy >= in.height) continue;
        const float* line = source + sz * planeStride + sy * rowStride;
        const float* taps = w + (dz * 3 + dy) * 3 * kGroupWidth * kLanes;
        for (int64_t dx = 0; dx < 3; dx++) {
          const int64_t sx = x + dx - 1;
          const float* k = taps + dx * kGroupWidth * kLanes;
          if (sx >= 0 && sx < in.width) addTap(line + sx * in.block, k, a);
          if (pair && sx + 1 < in.width) addTap(line + (sx + 1) * in.block, k, b);
        }
      }
    }
    const __m256 first = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    _mm256_storeu_ps(target + x * out.block, relu ? _mm256_max_ps(first, zero) : first);
    if (pair) {
      const __m256 second = _mm256_add_ps(_mm256_add_ps(b[0], b[1]), _mm256_add_ps(b[2], b[3]));
      _mm256_storeu_ps(target + (x + 1) * out.block, relu ? _mm256_max_ps(second, zero) : second);
    }
  }
}

#pragma GCC pop_options

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
      // [C/8][27 taps][4 k][8 lanes]
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      packed_ = weight.contiguous().view({channels_ / kLanes, kLanes, kGroupWidth, kTaps}).permute({0, 3, 2, 1}).contiguous();
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
      const float* w = packed_.data_ptr<float>();
      const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
      const int64_t samples = input.size(0), registers = channels_ / kLanes, rows = x.depth * x.height;
      at::parallel_for(0, samples * registers * rows, 4, [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; item++) {
          const int64_t row = item % rows, reg = item / rows % registers, n = item / rows / registers;
          convolveRow(x, y, w + reg * kTaps * kGroupWidth * kLanes, bias, n, reg * kLanes, row / x.height, row % x.height, relu);
        }
      });
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
