// Module entry: handle lifetime, memory accounting, autograd, threads, seeds and devices.
// Operator calls live in convert.cc, typed-array I/O in tensor_io.cc.
#include <malloc.h>
#include <climits>
#include <cstdlib>
#include "handle.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <cmath>
#include <sstream>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace stcnet {

HandleTable& handleTable(Napi::Env env) {
  auto* table = env.GetInstanceData<HandleTable>();
  if (table == nullptr) {
    table = new HandleTable();
    env.SetInstanceData(table);
  }
  return *table;
}

static void countStorage(Napi::Env env, HandleTable& table, Slot& slot);
static void uncountStorage(Napi::Env env, HandleTable& table, Slot& slot);

static void reportBytes(Napi::Env env, HandleTable& table, int64_t delta) {
  table.liveBytes += delta;
  table.unreportedBytes += delta;
  if (table.unreportedBytes > (1 << 20) || table.unreportedBytes < -(1 << 20)) {
    Napi::MemoryManagement::AdjustExternalMemory(env, table.unreportedBytes);
    table.unreportedBytes = 0;
  }
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  auto& table = handleTable(env);
  uint32_t index;
  if (!table.freeSlots.empty()) {
    index = table.freeSlots.back();
    table.freeSlots.pop_back();
  } else {
    if (table.slots.size() >= static_cast<size_t>(kSlotRange)) throw Napi::Error::New(env, "too many live tensors (16M)");
    index = static_cast<uint32_t>(table.slots.size());
    table.slots.emplace_back();
  }
  auto& slot = table.slots[index];
  slot.tensor = std::move(tensor);
  countStorage(env, table, slot);
  table.liveTensors++;
  return Napi::Number::New(env, static_cast<double>(slot.generation) * kSlotRange + index);
}

static Slot* findSlot(Napi::Env env, double handle) {
  auto& table = handleTable(env);
  if (!(handle >= 0)) return nullptr;
  auto index = static_cast<uint64_t>(std::fmod(handle, kSlotRange));
  auto generation = static_cast<uint64_t>(handle / kSlotRange);
  if (index >= table.slots.size()) return nullptr;
  auto& slot = table.slots[index];
  if (slot.generation != generation || !slot.tensor.defined()) return nullptr;
  return &slot;
}

bool releaseHandle(Napi::Env env, double handle) {
  Slot* slot = findSlot(env, handle);
  if (slot == nullptr) return false;
  auto& table = handleTable(env);
  table.liveTensors--;
  uncountStorage(env, table, *slot);
  slot->tensor.reset();
  slot->generation = (slot->generation + 1) & 0x0FFFFFFF;
  table.freeSlots.push_back(static_cast<uint32_t>(slot - table.slots.data()));
  return true;
}

static void countStorage(Napi::Env env, HandleTable& table, Slot& slot) {
  const auto& tensor = slot.tensor;
  if (!tensor.defined() || !tensor.has_storage()) return;
  slot.storage = tensor.storage().unsafeGetStorageImpl();
  auto& count = table.storages[slot.storage];
  if (count.handles++ == 0) {
    count.bytes = static_cast<int64_t>(tensor.storage().nbytes());
    reportBytes(env, table, count.bytes);
  }
}

static void uncountStorage(Napi::Env env, HandleTable& table, Slot& slot) {
  if (slot.storage == nullptr) return;
  auto found = table.storages.find(slot.storage);
  if (found != table.storages.end() && --found->second.handles == 0) {
    reportBytes(env, table, -found->second.bytes);
    table.storages.erase(found);
  }
  slot.storage = nullptr;
}

void recountHandle(Napi::Env env, double handle) {
  Slot* slot = findSlot(env, handle);
  if (slot == nullptr) return;
  auto& table = handleTable(env);
  uncountStorage(env, table, *slot);
  countStorage(env, table, *slot);
}

at::Tensor& unwrapTensor(const Napi::Value& value, const char* what) {
  Slot* slot = value.IsNumber() ? findSlot(value.Env(), value.As<Napi::Number>().DoubleValue()) : nullptr;
  if (slot == nullptr) {
    auto error = Napi::Error::New(value.Env(), std::string(what) + ": " +
                                                   (value.IsNumber() ? "tensor used after dispose()" : "expected a tensor"));
    error.Set("code", Napi::String::New(value.Env(), value.IsNumber() ? "ERR_DISPOSED" : "ERR_ARGUMENT"));
    throw error;
  }
  return slot->tensor;
}

const char* dtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

std::string describeTensor(const at::Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  std::ostringstream out;
  out << dtypeName(tensor.scalar_type()) << "[";
  auto sizes = tensor.sizes();
  for (size_t i = 0; i < sizes.size(); i++) out << (i ? ", " : "") << sizes[i];
  out << "]";
  if (!tensor.device().is_cpu()) out << " " << tensor.device().str();
  return out.str();
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber()) releaseHandle(info.Env(), info[0].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

// disposeMany(handles[], count): frees a tidy() scope's tensors in one call.
static Napi::Value DisposeMany(const Napi::CallbackInfo& info) {
  auto handles = info[0].As<Napi::Array>();
  uint32_t count = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : handles.Length();
  for (uint32_t i = 0; i < count; i++) {
    auto value = handles.Get(i);
    if (value.IsNumber()) releaseHandle(info.Env(), value.As<Napi::Number>().DoubleValue());
  }
  return info.Env().Undefined();
}

static Napi::Value Recount(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber()) recountHandle(info.Env(), info[0].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

static Napi::Value Memory(const Napi::CallbackInfo& info) {
  auto& table = handleTable(info.Env());
  auto result = Napi::Object::New(info.Env());
  result.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(table.liveTensors)));
  result.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(table.liveBytes)));
  return result;
}

static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "shape");
  auto sizes = tensor.sizes();
  auto result = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) result.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
  return result;
}

static Napi::Value Strides(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "strides");
  auto strides = tensor.strides();
  auto result = Napi::Array::New(info.Env(), strides.size());
  for (size_t i = 0; i < strides.size(); i++) result.Set(i, Napi::Number::New(info.Env(), static_cast<double>(strides[i])));
  return result;
}

static Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(unwrapTensor(info[0], "dtype").scalar_type()));
}

static Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), unwrapTensor(info[0], "device").device().str());
}

static Napi::Value Describe(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), describeTensor(unwrapTensor(info[0], "describe")));
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "item");
  return guard(info.Env(), "item(" + describeTensor(tensor) + ")", [&]() -> Napi::Value {
    auto scalar = tensor.item();
    if (scalar.isBoolean()) return Napi::Boolean::New(info.Env(), scalar.toBool());
    return Napi::Number::New(info.Env(), scalar.toDouble());
  });
}

static Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "isContiguous").is_contiguous());
}

static Napi::Value SameStorage(const Napi::CallbackInfo& info) {
  auto& a = unwrapTensor(info[0], "sameStorage");
  auto& b = unwrapTensor(info[1], "sameStorage");
  return Napi::Boolean::New(info.Env(), a.is_same(b) || (a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage())));
}

// --- autograd ---

static Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "requiresGrad").requires_grad());
}

static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "setRequiresGrad");
  guard(info.Env(), "setRequiresGrad(" + describeTensor(tensor) + ")", [&] { tensor.set_requires_grad(info[1].ToBoolean()); });
  return info.Env().Undefined();
}

static Napi::Value Grad(const Napi::CallbackInfo& info) {
  return wrapTensor(info.Env(), unwrapTensor(info[0], "grad").grad());
}

static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "setGrad");
  if (info[1].IsNull() || info[1].IsUndefined()) {
    tensor.mutable_grad().reset();
  } else {
    auto& grad = unwrapTensor(info[1], "setGrad");
    if (!grad.sizes().equals(tensor.sizes()) || grad.scalar_type() != tensor.scalar_type() || grad.device() != tensor.device()) {
      auto error = Napi::Error::New(info.Env(), "setGrad: a gradient must match its tensor: got " + describeTensor(grad) +
                                                    " for " + describeTensor(tensor));
      error.Set("code", Napi::String::New(info.Env(), "ERR_ARGUMENT"));
      throw error;
    }
    tensor.mutable_grad() = grad;
  }
  return info.Env().Undefined();
}

static Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "isLeaf").is_leaf());
}

static Napi::Value Backward(const Napi::CallbackInfo& info) {
  auto& tensor = unwrapTensor(info[0], "backward");
  at::Tensor gradient;
  if (info.Length() > 1 && info[1].IsNumber()) gradient = unwrapTensor(info[1], "backward");
  bool retainGraph = info.Length() > 2 && info[2].ToBoolean();
  guard(info.Env(), "backward(" + describeTensor(tensor) + ")", [&] {
    tensor.backward(gradient, retainGraph, false);
  });
  return info.Env().Undefined();
}

static Napi::Value GradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  c10::GradMode::set_enabled(info[0].ToBoolean());
  return info.Env().Undefined();
}

// --- threads, seeds, devices ---

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int threads = info[0].As<Napi::Number>().Int32Value();
  if (threads < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: expected at least 1 thread");
  at::set_num_threads(threads);
  return info.Env().Undefined();
}

static Napi::Value NumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  uint64_t seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  auto generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
  }
  if (at::hasCUDA()) {
    int devices = at::detail::getCUDAHooks().getNumGPUs();
    for (int i = 0; i < devices; i++) {
      auto cudaGenerator = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(cudaGenerator.mutex());
      cudaGenerator.set_current_seed(seed);
    }
  }
  return info.Env().Undefined();
}

// Mixed precision (torch.autocast): turns the AutocastCPU/AutocastCUDA dispatch keys on for this
// thread with the given lower-precision dtype; returns whether it was on before, to restore it.
static Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  std::string device = info[0].As<Napi::String>().Utf8Value();
  bool enabled = info[1].As<Napi::Boolean>().Value();
  std::string dtype = info[2].As<Napi::String>().Utf8Value();
  if (dtype != "bfloat16" && dtype != "float16") throw Napi::TypeError::New(info.Env(), "setAutocast: dtype must be bfloat16 or float16");
  at::ScalarType type = dtype == "bfloat16" ? at::kBFloat16 : at::kHalf;
  bool previous;
  if (device == "cpu") {
    previous = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(type);
    at::autocast::set_cpu_enabled(enabled);
  } else if (device == "cuda") {
    previous = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(type);
    at::autocast::set_enabled(enabled);
  } else {
    throw Napi::TypeError::New(info.Env(), "setAutocast: device must be cpu or cuda");
  }
  return Napi::Boolean::New(info.Env(), previous);
}

// Whether CPU autocast is on: stcnet's own convolutions step aside for it (src/engine/functional.ts).
static Napi::Value CpuAutocastEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::autocast::is_cpu_enabled());
}

// Frees the low-precision copies of weights autocast keeps while it is on.
static Napi::Value AutocastClearCache(const Napi::CallbackInfo& info) {
  at::autocast::clear_cache();
  return info.Env().Undefined();
}

static Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  int devices = at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  return Napi::Number::New(info.Env(), devices);
}

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto result = Napi::Object::New(info.Env());
  result.Set("torchVersion", Napi::String::New(info.Env(), TORCH_VERSION));
  result.Set("mkldnn", Napi::Boolean::New(info.Env(), at::hasMKLDNN()));
#ifdef STCNET_ONEDNN
  result.Set("onednnFusion", Napi::Boolean::New(info.Env(), true));
#else
  result.Set("onednnFusion", Napi::Boolean::New(info.Env(), false));
#endif
  result.Set("cuda", Napi::Boolean::New(info.Env(), at::hasCUDA()));
  result.Set("parallelInfo", Napi::String::New(info.Env(), at::get_parallel_info()));
  return result;
}

// glibc reads MALLOC_MMAP_MAX_ and MALLOC_TRIM_THRESHOLD_ when the process starts; src/engine/native.ts sets
// them just before it loads this addon (freed tensor memory kept for reuse: see there), so apply them now.
static void applyMallocSettings() {
#ifdef __GLIBC__
  auto setting = [](const char* name, int parameter) {
    const char* value = std::getenv(name);
    if (!value || !*value) return;
    char* end = nullptr;
    const long number = std::strtol(value, &end, 10);
    if (*end == '\0' && number >= 0 && number <= INT_MAX) mallopt(parameter, static_cast<int>(number));
  };
  setting("MALLOC_MMAP_MAX_", M_MMAP_MAX);
  setting("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD);
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  applyMallocSettings();
  auto fn = [&](const char* name, Napi::Value (*callback)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, callback, name));
  };
  fn("dispose", Dispose);
  fn("disposeMany", DisposeMany);
  fn("recount", Recount);
  fn("memory", Memory);
  fn("shape", Shape);
  fn("strides", Strides);
  fn("dtype", Dtype);
  fn("device", DeviceOf);
  fn("describe", Describe);
  fn("item", Item);
  fn("sameStorage", SameStorage);
  fn("isContiguous", IsContiguous);
  fn("requiresGrad", RequiresGrad);
  fn("setRequiresGrad", SetRequiresGrad);
  fn("grad", Grad);
  fn("setGrad", SetGrad);
  fn("isLeaf", IsLeaf);
  fn("backward", Backward);
  fn("gradEnabled", GradEnabled);
  fn("setGradEnabled", SetGradEnabled);
  fn("setNumThreads", SetNumThreads);
  fn("numThreads", NumThreads);
  fn("manualSeed", ManualSeed);
  fn("cudaDeviceCount", CudaDeviceCount);
  fn("setAutocast", SetAutocast);
  fn("autocastClearCache", AutocastClearCache);
  fn("cpuAutocastEnabled", CpuAutocastEnabled);
  fn("buildInfo", BuildInfo);
  initOperators(env, exports);
  initTensorIO(env, exports);
  initDistributed(env, exports);
  initOneDnn(env, exports);
  initWinograd(env, exports);
  initWinogradAutograd(env, exports);
  initGrouped(env, exports);
  initGroupedAutograd(env, exports);
  initStemAutograd(env, exports);
  initMaxPool(env, exports);
  initProfiler(env, exports);
  initSgd(env, exports);
  initMeanPools(env, exports);
  return exports;
}

NODE_API_MODULE(stcnet_torch, Init)

}  // namespace stcnet
