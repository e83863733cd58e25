// Tensor handles: numbers naming a slot (with a generation count) that owns one at::Tensor, plus the shared helpers every file uses.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <atomic>
#include <unordered_map>
#include <string>
#include <vector>

namespace stcnet {

// Tensor handles are numbers: a slot in a per-environment table plus a generation count, so
// a stale handle is detected instead of touching another tensor. Numbers cost V8 nothing to
// make or collect, unlike externals with finalizers (measured: ~4 us per tensor saved).
// The JS Tensor class owns each handle; dispose() frees the slot at once, and a JS
// FinalizationRegistry frees handles that escape every tidy() scope and are never disposed.
struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  // The storage this handle was counted under (null: none), so that release undoes exactly that.
  const void* storage = nullptr;
};

// Live handles per storage: bytes are counted once per storage, however many handles, views
// or in-place results share it.
struct StorageCount {
  int64_t handles = 0;
  int64_t bytes = 0;
};

// Per Node environment (main thread or a worker), so threads never share these vectors.
struct HandleTable {
  std::vector<Slot> slots;
  // Operators looked up by name, indexed by the id handed to JS (convert.cc).
  std::vector<c10::OperatorHandle> operators;
  std::vector<uint32_t> freeSlots;
  std::unordered_map<const void*, StorageCount> storages;
  int64_t liveTensors = 0;
  int64_t liveBytes = 0;
  // Bytes not yet reported to V8: reporting is batched, since each report may start a GC check.
  int64_t unreportedBytes = 0;
};

constexpr double kSlotRange = 16777216.0;  // 2^24 slots; the generation fills the bits above

HandleTable& handleTable(Napi::Env env);
Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor);
// Throws a JS error naming `what` when `value` is not a live tensor handle.
at::Tensor& unwrapTensor(const Napi::Value& value, const char* what);
bool releaseHandle(Napi::Env env, double handle);
// Re-counts a handle whose tensor now points at other data (set_data).
void recountHandle(Napi::Env env, double handle);

std::string describeTensor(const at::Tensor& tensor);  // "float32[2, 3] cpu"
const char* dtypeName(at::ScalarType type);

// Runs `body`, turning libtorch (c10::Error) and std exceptions into JS errors whose message
// starts with `context`; `code` goes on the error for the TS layer to map to its error classes.
template <typename Body>
auto guard(Napi::Env env, const std::string& context, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& error) {
    auto jsError = Napi::Error::New(env, context + ": " + error.what_without_backtrace());
    jsError.Set("code", Napi::String::New(env, "ERR_TORCH"));
    throw jsError;
  } catch (const std::exception& error) {
    auto jsError = Napi::Error::New(env, context + ": " + error.what());
    jsError.Set("code", Napi::String::New(env, "ERR_TORCH"));
    throw jsError;
  }
}

// Three integers from a JS array (stride, padding, ...), else a TypeError "context: what must be 3 integers".
inline std::vector<int64_t> intTriple(const Napi::Value& value, const char* context, const char* what) {
  if (!value.IsArray() || value.As<Napi::Array>().Length() != 3) {
    throw Napi::TypeError::New(value.Env(), std::string(context) + ": " + what + " must be 3 integers");
  }
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> result;
  for (uint32_t i = 0; i < 3; i++) result.push_back(array.Get(i).As<Napi::Number>().Int64Value());
  return result;
}

void initOperators(Napi::Env env, Napi::Object exports);
void initTensorIO(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);  // distributed.cc: c10d (TCPStore, Gloo, Reducer)
void initOneDnn(Napi::Env env, Napi::Object exports);  // onednn.cc: convolutions with fused post-ops
void initWinograd(Napi::Env env, Napi::Object exports);  // winograd.cc: Winograd 3×3×3 convolutions on the blocked layout
void initWinogradAutograd(Napi::Env env, Napi::Object exports);  // winograd_autograd.cc: the Winograd convolution for training, with gradients
void initGrouped(Napi::Env env, Napi::Object exports);   // grouped.cc: grouped 3×3×3 convolutions of 4-channel groups on the blocked layout
void initGroupedAutograd(Napi::Env env, Napi::Object exports);  // grouped_autograd.cc: the grouped convolution for training, with gradients
void initStemAutograd(Napi::Env env, Napi::Object exports);  // stem_autograd.cc: the RGB stem convolution for training, its weight gradient by AVX2 kernels
void initMaxPool(Napi::Env env, Napi::Object exports);  // max_pool.cc: 3D max pooling of float32 and bf16, with its gradient
void initProfiler(Napi::Env env, Napi::Object exports);  // profiler.cc: libtorch's operator profiler to a Chrome trace
void initSgd(Napi::Env env, Napi::Object exports);  // sgd.cc: one parameter's SGD update in one call
void initMeanPools(Napi::Env env, Napi::Object exports);  // mean_pools.cc: an STC block's two means, with one cheap backward

}  // namespace stcnet
