// libtorch's operator profiler around a stretch of code: profileStart(file) … profileStop() records every
// operator the dispatcher runs on this thread in between (the forward's, and the backward's, which
// libtorch's autograd engine runs on the calling thread for CPU tensors) and writes them to `file` as a
// Chrome trace (chrome://tracing, Perfetto), the file PyTorch's torch.autograd.profiler writes.
#include "handle.h"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <memory>

namespace stcnet {
namespace {

std::unique_ptr<torch::autograd::profiler::RecordProfile> active;

Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "profileStart: expected (file)");
  if (active) throw Napi::Error::New(env, "profileStart: a profile is already being recorded");
  const std::string file = info[0].As<Napi::String>();
  return guard(env, "profileStart", [&]() -> Napi::Value {
    active = std::make_unique<torch::autograd::profiler::RecordProfile>(file);
    return env.Undefined();
  });
}

// Writes the trace; false when no profile was being recorded.
Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guard(env, "profileStop", [&]() -> Napi::Value {
    const bool recording = active != nullptr;
    active.reset();  // the destructor writes the events and turns the profiler off
    return Napi::Boolean::New(env, recording);
  });
}

}  // namespace

void initProfiler(Napi::Env env, Napi::Object exports) {
  exports.Set("profileStart", Napi::Function::New(env, ProfileStart, "profileStart"));
  exports.Set("profileStop", Napi::Function::New(env, ProfileStop, "profileStop"));
}

}  // namespace stcnet
