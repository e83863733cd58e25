// libtorch's operator profiler around a stretch of code: profileStart(file) … profileStop() records every
// operator the dispatcher runs on this thread in between (the forward's, and the backward's, which
// libtorch's autograd engine runs on the calling thread for CPU tensors) and writes them to `file` as a
// Chrome trace (chrome://tracing, Perfetto), the file PyTorch's torch.autograd.profiler writes.
#include "handle.h"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <fstream>
#include <memory>
#include <string>

namespace stcnet {
namespace {

// The trace file, opened here so that an unwritable path is an error at the start, and the profiler
// writing into it.
struct Recording {
  std::string path;
  std::unique_ptr<std::ofstream> file;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
};
std::unique_ptr<Recording> active;

Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "profileStart: expected (file)");
  if (active) throw Napi::Error::New(env, "profileStart: a profile is already being recorded");
  auto recording = std::make_unique<Recording>();
  recording->path = info[0].As<Napi::String>();
  recording->file = std::make_unique<std::ofstream>(recording->path);
  if (!recording->file->is_open()) throw Napi::Error::New(env, "profileStart: cannot write " + recording->path);
  return guard(env, "profileStart", [&]() -> Napi::Value {
    recording->profile = std::make_unique<torch::autograd::profiler::RecordProfile>(*recording->file);
    active = std::move(recording);
    return env.Undefined();
  });
}

// Writes the trace; false when no profile was being recorded.
Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!active) return Napi::Boolean::New(env, false);
  std::unique_ptr<Recording> recording = std::move(active);
  return guard(env, "profileStop", [&]() -> Napi::Value {
    recording->profile.reset();  // the destructor writes the events and turns the profiler off
    recording->file->close();
    if (recording->file->fail()) throw Napi::Error::New(env, "profileStop: writing " + recording->path + " failed");
    return Napi::Boolean::New(env, true);
  });
}

}  // namespace

void initProfiler(Napi::Env env, Napi::Object exports) {
  exports.Set("profileStart", Napi::Function::New(env, ProfileStart, "profileStart"));
  exports.Set("profileStop", Napi::Function::New(env, ProfileStop, "profileStop"));
}

}  // namespace stcnet
