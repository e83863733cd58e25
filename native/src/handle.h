// Tensor handles: a JS external owning one at::Tensor, plus the shared helpers every file uses.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <atomic>
#include <string>

namespace stcnet {

// One owner per handle: the external's finalizer deletes the holder; dispose() resets the
// tensor early so big video tensors never wait for the garbage collector.
struct TensorHolder {
  at::Tensor tensor;
  int64_t reportedBytes = 0;
};

struct MemoryCounters {
  std::atomic<int64_t> liveTensors{0};
  std::atomic<int64_t> liveBytes{0};
};
MemoryCounters& counters();

Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor);
// Throws a JS TypeError naming `what` when `value` is not a live tensor handle.
at::Tensor& unwrapTensor(const Napi::Value& value, const char* what);
void releaseHolder(Napi::Env env, TensorHolder* holder);

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

void initOperators(Napi::Env env, Napi::Object exports);
void initTensorIO(Napi::Env env, Napi::Object exports);

}  // namespace stcnet
