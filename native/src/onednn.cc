// oneDNN called directly for the inference mode (issue 9): convolutions prepared once, whose residual
// sum and ReLU can run in their own pass over the output (oneDNN's sum and eltwise post-ops; libtorch
// 1.13 has them only for prepacked 2D convolutions, PyTorch 2.0 added `mkldnn::_convolution_pointwise`),
// and the STC block's gate and merge on the blocked layout. Calls oneDNN through ideep, the header-only
// wrapper libtorch itself is built with, on the same system libdnnl. Built only where those headers are
// found (STCNET_ONEDNN; scripts/libtorch-config.cjs).
#include "handle.h"

#ifdef STCNET_ONEDNN
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <vector>
#include "mkldnn_common.h"
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

// Convolution(weight, bias|null, stride[], padding[], dilation[], groups): a convolution prepared once,
//   weight an MKLDNN tensor packed by aten::mkldnn_reorder_conv{2,3}d_weight, bias dense float32.
//   forward(input, residual|null) -> MKLDNN result: conv(input), or with a residual ReLU(conv + residual)
//   by oneDNN's sum and ReLU post-ops, written into residual's buffer when its layout is the output's
//   (the result then shares it), else into a reordered copy.
// Per input layout it keeps oneDNN's primitive, its scratchpad and the weights in the primitive's own
// format: aten::mkldnn_convolution looks up (ideep's cache) and builds these on every call, 60–110 µs
// per call measured, and reorders weights whose packed format is not the one picked for the input size.
class Convolution : public Napi::ObjectWrap<Convolution> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Convolution", {
      InstanceMethod<&Convolution::Forward>("forward"),
      InstanceMethod<&Convolution::Release>("release"),
    });
  }

  explicit Convolution(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Convolution>(info) {
    auto env = info.Env();
    if (info.Length() != 6) throw Napi::TypeError::New(env, "Convolution: expected 6 arguments");
    weightTensor_ = unwrapTensor(info[0], "Convolution: weight");
    if (!info[1].IsNull()) biasTensor_ = unwrapTensor(info[1], "Convolution: bias");
    stride_ = intList(env, info[2], "Convolution: stride");
    padding_ = intList(env, info[3], "Convolution: padding");
    dilation_ = intList(env, info[4], "Convolution: dilation");
    groups_ = info[5].As<Napi::Number>().Int64Value();
    guard(env, "Convolution", [&] {
      TORCH_CHECK(weightTensor_.is_mkldnn() && (weightTensor_.dim() == 4 || weightTensor_.dim() == 5), "weight must be a 4-D or 5-D MKLDNN tensor");
      const size_t spatial = weightTensor_.dim() - 2;
      TORCH_CHECK(stride_.size() == spatial && padding_.size() == spatial && dilation_.size() == spatial,
                  "stride, padding and dilation need one value per spatial dimension");
      biasTensor_ = denseBias(biasTensor_, weightTensor_.size(0));
    });
  }

 private:
  struct Plan {
    ideep::tensor::desc source;
    bool sum;
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward primitive;
    ideep::tensor weights;     // in pd's weights format
    ideep::tensor scratchpad;
  };

  // residual: null for a plain convolution (ideep reads only the sum's output type from it).
  Plan& planFor(const ideep::tensor& x, const ideep::tensor& w, const ideep::tensor& b, const ideep::dims& dstDims,
                ideep::tensor* residual) {
    const bool sum = residual != nullptr;
    for (auto& plan : plans_) if (plan.sum == sum && plan.source == x.get_desc()) return plan;
    if (plans_.size() >= 8) plans_.erase(plans_.begin());  // a prepared model sees one or two input sizes
    ideep::convolution_forward_params params;
    ideep::tensor none;
    // ideep takes ATen's dilation (1: none) and converts it to oneDNN's (0: none).
    ideep::convolution_forward::prepare(params, x, w, b, dstDims, sum ? *residual : none, stride_, dilation_, padding_, padding_, groups_,
                                        ideep::scale_t(), ideep::scale_t(), ideep::scale_t(),
                                        sum ? ideep::attr_t::residual() : ideep::attr_t());
    ideep::tensor weights = w.make_grouped_weights(groups_).reorder_if_differ_in(params.pd.weights_desc());
    plans_.push_back(Plan{x.get_desc(), sum, params.pd, dnnl::convolution_forward(params.pd), std::move(weights),
                          ideep::tensor(params.pd.scratchpad_desc())});
    return plans_.back();
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (info.Length() != 2) throw Napi::TypeError::New(env, "Convolution.forward: expected (input, residual|null)");
    const at::Tensor& input = unwrapTensor(info[0], "Convolution.forward: input");
    const at::Tensor* residual = info[1].IsNull() ? nullptr : &unwrapTensor(info[1], "Convolution.forward: residual");
    return guard(env, "Convolution.forward", [&]() -> Napi::Value {
      TORCH_CHECK(weightTensor_.defined(), "used after release()");
      TORCH_CHECK(input.is_mkldnn() && input.scalar_type() == at::kFloat && input.dim() == weightTensor_.dim(),
                  "input must be a float32 MKLDNN tensor of ", weightTensor_.dim(), " dimensions");
      TORCH_CHECK(input.size(1) == weightTensor_.size(1) * groups_, "input has ", input.size(1), " channels, the weight takes ",
                  weightTensor_.size(1) * groups_);
      TORCH_CHECK(!residual || residual->is_mkldnn(), "residual must be an MKLDNN tensor");
      // Runs as a kernel would, below autograd: MKLDNN tensors carry no autograd history.
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      const ideep::tensor& x = at::native::itensor_from_mkldnn(input);
      const ideep::tensor& w = at::native::itensor_from_mkldnn(weightTensor_);
      ideep::tensor b;  // empty: no bias
      if (biasTensor_.defined()) b = at::native::itensor_view_from_dense(biasTensor_);
      // Output size as aten::convolution computes it.
      ideep::dims dstDims = {input.size(0), weightTensor_.size(0)};
      for (int64_t d = 0; d + 2 < input.dim(); d++) {
        const int64_t kernel = weightTensor_.size(d + 2);
        const int64_t size = (input.size(d + 2) + 2 * padding_[d] - dilation_[d] * (kernel - 1) - 1) / stride_[d] + 1;
        TORCH_CHECK(size > 0, "input of size ", input.sizes(), " is smaller than the kernel");
        dstDims.push_back(size);
      }
      if (residual) {
        TORCH_CHECK(residual->sizes() == c10::IntArrayRef(dstDims), "residual shape ", residual->sizes(),
                    " differs from the convolution's output ", c10::IntArrayRef(dstDims));
      }
      ideep::tensor y;
      if (residual) y = at::native::itensor_from_mkldnn(*residual);  // shares residual's buffer
      Plan& plan = planFor(x, w, b, dstDims, residual ? &y : nullptr);
      bool inPlace = false;
      if (residual) {
        inPlace = y.get_desc() == plan.pd.dst_desc();
        // The sum post-op reads the output buffer: a residual in another layout is reordered into a new one.
        if (!inPlace) y = y.reorder_if_differ_in(plan.pd.dst_desc());
      } else {
        y = ideep::tensor(plan.pd.dst_desc());
      }
      // An input in another layout (the stem's plain input) is reordered into the primitive's.
      const ideep::tensor source = x.reorder_if_differ_in(plan.pd.src_desc());
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, source}, {DNNL_ARG_WEIGHTS, plan.weights}, {DNNL_ARG_DST, y},
                                                 {DNNL_ARG_SCRATCHPAD, plan.scratchpad}};
      if (biasTensor_.defined()) args.insert({DNNL_ARG_BIAS, b});
      plan.primitive.execute(ideep::stream::default_stream(), args);
      if (inPlace) return wrapTensor(env, *residual);
      return wrapTensor(env, at::native::new_with_itensor_mkldnn(std::move(y), input.scalar_type(), input.device()));
    });
  }

  // Frees the weights and plans now instead of at garbage collection.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    plans_.clear();
    weightTensor_.reset();
    biasTensor_.reset();
    return info.Env().Undefined();
  }

  at::Tensor weightTensor_;
  at::Tensor biasTensor_;
  std::vector<int64_t> stride_, padding_, dilation_;
  int64_t groups_ = 1;
  std::vector<Plan> plans_;
};

// The loops over one channel block with its width B known at compile time, so that the lanes are
// registers and the compiler vectorises them (with B at run time they went through memory: 50× slower).
// T: float or c10::BFloat16 (summed and merged in float32, a bf16 result rounded to nearest even).
template <int64_t B, typename T>
void poolPlane(const T* __restrict p, int64_t positions, float* __restrict sums) {
  float acc[B] = {};
  for (int64_t i = 0; i < positions; i++, p += B) {
    for (int64_t lane = 0; lane < B; lane++) acc[lane] += static_cast<float>(p[lane]);
  }
  for (int64_t lane = 0; lane < B; lane++) sums[lane] = acc[lane];
}

template <int64_t B, typename T>
void mergeBlock(T* __restrict x, const T* __restrict y, const float* __restrict gate, int64_t positions) {
  float scale[B];
  for (int64_t lane = 0; lane < B; lane++) scale[lane] = gate[lane];
  for (int64_t i = 0; i < positions; i++, x += B, y += B) {
    for (int64_t lane = 0; lane < B; lane++) {
      x[lane] = static_cast<T>(std::max(0.f, static_cast<float>(y[lane]) + static_cast<float>(x[lane]) * scale[lane]));
    }
  }
}

// Blocks of 16 channels (oneDNN's layout on AVX-512), one register per position. The scalar loops above
// do not vectorise c10::BFloat16's conversions (measured: 6.8 ms for 8×256×8×28², float32's 3.7).
// bf16 rounds to nearest even as c10::BFloat16 does; a NaN becomes 0 through the max, as there.
#pragma GCC push_options
#pragma GCC target("avx512f")
inline __m512 loadBf16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

inline void storeBf16(c10::BFloat16* p, __m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
}

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const c10::BFloat16* p) { return loadBf16(p); }
inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
inline void store16(c10::BFloat16* p, __m512 v) { storeBf16(p, v); }

template <typename T>
void poolPlane16(const T* p, int64_t positions, float* sums) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < positions; i++, p += 16) acc = _mm512_add_ps(acc, load16(p));
  _mm512_storeu_ps(sums, acc);
}

template <typename T>
void mergeBlock16(T* x, const T* y, const float* gate, int64_t positions) {
  const __m512 scale = _mm512_loadu_ps(gate), zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < positions; i++, x += 16, y += 16) store16(x, _mm512_max_ps(_mm512_fmadd_ps(load16(x), scale, load16(y)), zero));
}
#pragma GCC pop_options

// The AVX-512 loops for blocks of 16 channels (float32 too: the scalar ones compile for the baseline
// ISA), the portable ones elsewhere.
template <int64_t B, typename T>
void poolPlaneFast(const T* p, int64_t positions, float* sums) {
  if constexpr (B == 16) {
    if (cpuUsesAvx512()) return poolPlane16(p, positions, sums);
  }
  poolPlane<B>(p, positions, sums);
}

template <int64_t B, typename T>
void mergeBlockFast(T* x, const T* y, const float* gate, int64_t positions) {
  if constexpr (B == 16) {
    if (cpuUsesAvx512()) return mergeBlock16(x, y, gate, positions);
  }
  mergeBlock<B>(x, y, gate, positions);
}

// The gate's FCs by hand: per STC block they are a few dot products of at most C·T values (at batch 1,
// stc_resnext3d_101's 23 blocks of 1024 channels took 0.28–0.42 ms each through ten ATen operators,
// 7–10 ms of a 35 ms forward, for about 4 µs of arithmetic).
#pragma GCC push_options
#pragma GCC target("avx2,fma")
float dotAvx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  const __m256 sum8 = _mm256_add_ps(s0, s1);
  __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(sum8), _mm256_extractf128_ps(sum8, 1));
  sum4 = _mm_hadd_ps(sum4, sum4);
  sum4 = _mm_hadd_ps(sum4, sum4);
  float sum = _mm_cvtss_f32(sum4);
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}
#pragma GCC pop_options

float dot(const float* a, const float* b, int64_t n) {
  static const bool avx2 = cpuHasAvx2Fma();
  if (avx2) return dotAvx2(a, b, n);
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

// One branch, σ(fc2(ReLU(fc1(z)))), added into out (C values); weights contiguous float32 (made so by
// StcMerge), biases may be absent.
struct GateBranch {
  const float *w1, *b1, *w2, *b2;
  int64_t in, hidden, channels;
  void addTo(const float* z, float* hiddenScratch, float* out) const {
    for (int64_t j = 0; j < hidden; j++) hiddenScratch[j] = std::max(0.f, (b1 ? b1[j] : 0.f) + dot(w1 + j * in, z, in));
    for (int64_t c = 0; c < channels; c++) out[c] += 1.f / (1.f + std::exp(-((b2 ? b2[c] : 0.f) + dot(w2 + c * hidden, hiddenScratch, hidden))));
  }
};

GateBranch gateBranch(const std::vector<at::Tensor>& weights, size_t first, int64_t in, int64_t channels, const char* which) {
  const at::Tensor &w1 = weights[first], &b1 = weights[first + 1], &w2 = weights[first + 2], &b2 = weights[first + 3];
  TORCH_CHECK(w1.defined() && w2.defined() && w1.dim() == 2 && w2.dim() == 2 && w1.size(1) == in && w2.size(1) == w1.size(0) &&
                  w2.size(0) == channels && (!b1.defined() || b1.numel() == w1.size(0)) && (!b2.defined() || b2.numel() == channels),
              "the gate's ", which, " weights do not fit: fc1 ", w1.defined() ? w1.sizes() : c10::IntArrayRef(), " for ", in, " inputs, fc2 ",
              w2.defined() ? w2.sizes() : c10::IntArrayRef(), " for ", channels, " channels");
  auto data = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; };
  return {data(w1), data(b1), data(w2), data(b2), in, w1.size(0), channels};
}

// Calls body with std::integral_constant<int64_t, B> for oneDNN's channel block widths (1: plain layout).
template <typename Body>
void withBlock(int64_t block, Body&& body) {
  switch (block) {
    case 1: return body(std::integral_constant<int64_t, 1>());
    case 4: return body(std::integral_constant<int64_t, 4>());
    case 8: return body(std::integral_constant<int64_t, 8>());
    case 16: return body(std::integral_constant<int64_t, 16>());
    default: TORCH_CHECK(false, "unsupported channel block of ", block);
  }
}

// mkldnnStcMerge(residual, identity, [tcb.fc1.w, tcb.fc1.b, tcb.fc2.w, tcb.fc2.b, scb.fc1.w, ...])
//   The STC block's gate and merge on the blocked layout, in place on residual (an MKLDNN tensor
//   N×C×T×H×W from a convolution, float32 or bf16; pooling, gate and merge compute in float32):
//   pooled = mean over H,W (N×C×T); s_t = σ(fc2(ReLU(fc1(mean_T pooled))));
//   s_s = σ(fc2(ReLU(fc1(pooled flattened c·T + t)))); residual ← ReLU(identity + residual · (s_t + s_s)/2).
//   identity: an MKLDNN tensor of residual's shape, reordered first if its layout differs (a type-A
//   shortcut's). One pass to pool and one to merge, and the gate's small operators without a JS round
//   trip each (2× faster than ATen's operators on dense views of the blocked memory, measured).
Napi::Value StcMerge(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 3 || !info[2].IsArray()) throw Napi::TypeError::New(env, "mkldnnStcMerge: expected (residual, identity, weights[8])");
  const at::Tensor& residual = unwrapTensor(info[0], "mkldnnStcMerge: residual");
  const at::Tensor& identity = unwrapTensor(info[1], "mkldnnStcMerge: identity");
  auto list = info[2].As<Napi::Array>();
  if (list.Length() != 8) throw Napi::TypeError::New(env, "mkldnnStcMerge: expected 8 gate weights");
  std::vector<at::Tensor> weights;
  for (uint32_t i = 0; i < 8; i++) {
    weights.push_back(list.Get(i).IsNull() ? at::Tensor() : unwrapTensor(list.Get(i), "mkldnnStcMerge: gate weight"));
  }
  return guard(env, "mkldnnStcMerge", [&]() -> Napi::Value {
    TORCH_CHECK(residual.is_mkldnn() && residual.dim() == 5, "residual must be a 5-D MKLDNN tensor");
    const ChannelLayout r = [&] {
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      return channelLayout(at::native::itensor_from_mkldnn(residual));
    }();
    TORCH_CHECK(identity.is_mkldnn() && identity.sizes() == residual.sizes(), "identity must be an MKLDNN tensor of residual's shape ",
                residual.sizes(), ", got ", identity.is_mkldnn() ? "" : "a dense tensor of ", identity.sizes());
    ideep::tensor identityInLayout;  // identity's memory in residual's layout and type (shared when it already is)
    {
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      identityInLayout = at::native::itensor_from_mkldnn(identity).reorder_if_differ_in(at::native::itensor_from_mkldnn(residual).get_desc());
    }
    const void* id = channelLayout(identityInLayout).data;
    const int64_t samples = r.samples, channels = r.blocks * r.block, frames = residual.size(2);
    const int64_t planes = r.positions / frames;  // H·W positions per frame
    const int64_t b = r.block;
    // The gate in float32 whatever the activations' type, on contiguous rows (no-ops for the prepared
    // network's weights; its weights are small either way).
    for (auto& w : weights) {
      if (w.defined()) w = w.to(at::kFloat).contiguous();
    }

    auto run = [&](auto element) {
      using T = decltype(element);
      const T* data = static_cast<const T*>(r.data);
      // Pool H,W: pooled[n][c][t], c = block·b + lane.
      at::Tensor pooled = at::empty({samples, channels, frames}, at::kFloat);
      withBlock(b, [&](auto lanes) {
        constexpr int64_t B = decltype(lanes)::value;
        float* out = pooled.data_ptr<float>();
        at::parallel_for(0, samples * r.blocks, 1, [&](int64_t begin, int64_t end) {
          for (int64_t nb = begin; nb < end; nb++) {
            for (int64_t t = 0; t < frames; t++) {
              float sums[B];
              poolPlaneFast<B>(data + (nb * r.positions + t * planes) * B, planes, sums);
              for (int64_t lane = 0; lane < B; lane++) out[((nb / r.blocks) * channels + (nb % r.blocks) * B + lane) * frames + t] = sums[lane] / planes;
            }
          }
        });
      });
      // gate[n] = (s_t + s_s)/2: s_t of the mean over T of pooled[n], s_s of pooled[n] flattened (c·T + t).
      const GateBranch temporal = gateBranch(weights, 0, channels, channels, "temporal branch's");
      const GateBranch spatial = gateBranch(weights, 4, channels * frames, channels, "spatial branch's");
      std::vector<float> gate(samples * channels, 0.f), meanOverT(channels), hidden(std::max(temporal.hidden, spatial.hidden));
      const float* p = pooled.data_ptr<float>();
      for (int64_t n = 0; n < samples; n++) {
        const float* z = p + n * channels * frames;
        for (int64_t c = 0; c < channels; c++) {
          float sum = 0;
          for (int64_t t = 0; t < frames; t++) sum += z[c * frames + t];
          meanOverT[c] = sum / frames;
        }
        float* out = gate.data() + n * channels;
        temporal.addTo(meanOverT.data(), hidden.data(), out);
        spatial.addTo(z, hidden.data(), out);
        for (int64_t c = 0; c < channels; c++) out[c] *= 0.5f;
      }
      const float* g = gate.data();

      // residual ← max(0, identity + residual · gate), per channel block.
      T* x = static_cast<T*>(r.data);
      const T* y = static_cast<const T*>(id);
      withBlock(b, [&](auto lanes) {
        constexpr int64_t B = decltype(lanes)::value;
        at::parallel_for(0, samples * r.blocks, 1, [&](int64_t begin, int64_t end) {
          for (int64_t nb = begin; nb < end; nb++) {
            mergeBlockFast<B>(x + nb * r.positions * B, y + nb * r.positions * B, g + (nb / r.blocks) * channels + (nb % r.blocks) * B, r.positions);
          }
        });
      });
    };
    if (r.bf16) run(c10::BFloat16());
    else run(0.f);
    return wrapTensor(env, residual);
  });
}
#endif

}  // namespace

void initOneDnn(Napi::Env env, Napi::Object exports) {
#ifdef STCNET_ONEDNN
  exports.Set("MkldnnConvolution", Convolution::Define(env));
  exports.Set("mkldnnStcMerge", Napi::Function::New(env, StcMerge, "mkldnnStcMerge"));
#endif
}

}  // namespace stcnet
