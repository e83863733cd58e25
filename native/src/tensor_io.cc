// Typed arrays in and out: tensors are created from JS memory by one copy, and exported
// the same way (contiguous, on the CPU).
#include "handle.h"

#include <cstring>

namespace stcnet {
namespace {

at::ScalarType parseDtype(Napi::Env env, const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "int16") return at::kShort;
  if (name == "int8") return at::kChar;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  throw Napi::TypeError::New(env, "unknown dtype '" + name + "'");
}

std::vector<int64_t> parseShape(Napi::Env env, const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "shape: expected an array of non-negative integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    auto item = array.Get(i);
    double size = item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : -1;
    if (size < 0 || size != static_cast<double>(static_cast<int64_t>(size))) {
      throw Napi::TypeError::New(env, "shape: expected an array of non-negative integers");
    }
    shape[i] = static_cast<int64_t>(size);
  }
  return shape;
}

// fromBuffer(typedArrayOrBuffer, shape, dtype) -> tensor (a copy; JS may reuse its memory).
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const uint8_t* data = nullptr;
  size_t byteLength = 0;
  if (info[0].IsTypedArray()) {
    auto typed = info[0].As<Napi::TypedArray>();
    auto buffer = typed.ArrayBuffer();
    data = static_cast<const uint8_t*>(buffer.Data()) + typed.ByteOffset();
    byteLength = typed.ByteLength();
  } else if (info[0].IsArrayBuffer()) {
    auto buffer = info[0].As<Napi::ArrayBuffer>();
    data = static_cast<const uint8_t*>(buffer.Data());
    byteLength = buffer.ByteLength();
  } else if (info[0].IsDataView()) {
    auto view = info[0].As<Napi::DataView>();
    data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    byteLength = view.ByteLength();
  } else {
    throw Napi::TypeError::New(env, "fromBuffer: expected a typed array, DataView or ArrayBuffer");
  }
  auto shape = parseShape(env, info[1]);
  auto dtype = parseDtype(env, info[2].As<Napi::String>().Utf8Value());
  size_t expected = c10::elementSize(dtype);
  for (auto size : shape) {
    if (size != 0 && expected > SIZE_MAX / static_cast<size_t>(size)) {
      throw Napi::RangeError::New(env, "fromBuffer: shape [" + c10::Join(", ", shape) + "] is too large");
    }
    expected *= static_cast<size_t>(size);
  }
  if (expected != byteLength) {
    throw Napi::RangeError::New(env, "fromBuffer: shape [" + c10::Join(", ", shape) + "] of " + dtypeName(dtype) + " needs " +
                                         std::to_string(expected) + " bytes, the data has " + std::to_string(byteLength));
  }
  auto tensor = guard(env, "fromBuffer", [&] { return at::empty(shape, at::TensorOptions().dtype(dtype)); });
  if (byteLength) std::memcpy(tensor.data_ptr(), data, byteLength);
  return wrapTensor(env, std::move(tensor));
}

// toBuffer(tensor) -> ArrayBuffer holding the tensor's elements in row-major order.
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& tensor = unwrapTensor(info[0], "toBuffer");
  return guard(env, "toBuffer(" + describeTensor(tensor) + ")", [&]() -> Napi::Value {
    at::Tensor source = tensor.detach();
    if (!source.device().is_cpu()) source = source.to(at::kCPU);
    source = source.contiguous();
    size_t bytes = static_cast<size_t>(source.numel()) * source.element_size();
    auto buffer = Napi::ArrayBuffer::New(env, bytes);
    if (bytes) std::memcpy(buffer.Data(), source.data_ptr(), bytes);
    return buffer;
  });
}

}  // namespace

void initTensorIO(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer, "fromBuffer"));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer, "toBuffer"));
}

}  // namespace stcnet
