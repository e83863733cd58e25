// Operator calls through the ATen dispatcher: JS values are converted to IValues by the
// operator's schema, so every registered operator (and its autograd) is reachable by name.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/function_schema.h>
#include <ATen/core/jit_type.h>
#include <ATen/core/stack.h>
#include <ATen/ScalarOps.h>
#include <cmath>
#include <c10/core/Device.h>
#include <sstream>
#include <vector>

namespace stcnet {
namespace {

// Looked-up operators, indexed by the id handed to JS; the TS layer caches ids per name,
// so the string lookup happens once per operator, not once per call.
std::vector<c10::OperatorHandle>& operatorTable(Napi::Env env) {
  return handleTable(env).operators;
}

const c10::OperatorHandle& operatorAt(Napi::Env env, const Napi::Value& id) {
  auto& operators = operatorTable(env);
  uint32_t index = id.IsNumber() ? id.As<Napi::Number>().Uint32Value() : UINT32_MAX;
  if (index >= operators.size()) throw Napi::RangeError::New(env, "unknown operator id");
  return operators[index];
}

[[noreturn]] void argumentError(Napi::Env env, const c10::FunctionSchema& schema, const c10::Argument& argument,
                                const std::string& expected) {
  auto error = Napi::TypeError::New(env, schema.name() + (schema.overload_name().empty() ? "" : "." + schema.overload_name()) +
                                             ": argument '" + argument.name() + "' expected " + expected +
                                             " (schema: " + c10::toString(schema) + ")");
  error.Set("code", Napi::String::New(env, "ERR_ARGUMENT"));
  throw error;
}

int64_t toInt(Napi::Env env, const c10::FunctionSchema& schema, const c10::Argument& argument, const Napi::Value& value) {
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!value.IsNumber()) argumentError(env, schema, argument, "an integer");
  double number = value.As<Napi::Number>().DoubleValue();
  if (number != static_cast<double>(static_cast<int64_t>(number))) argumentError(env, schema, argument, "an integer, got a fraction");
  return static_cast<int64_t>(number);
}

c10::IValue toIValue(Napi::Env env, const c10::FunctionSchema& schema, const c10::Argument& argument,
                     const c10::TypePtr& type, const Napi::Value& value);

c10::IValue toList(Napi::Env env, const c10::FunctionSchema& schema, const c10::Argument& argument,
                   const c10::ListType& listType, const Napi::Value& value) {
  const auto& element = listType.getElementType();
  auto kind = element->kind();
  // PyTorch lets a single int stand for a fixed-size int list (kernel_size=3 means [3, 3, 3]).
  if (value.IsNumber() && (kind == c10::TypeKind::IntType || kind == c10::TypeKind::SymIntType)) {
    int64_t repeated = toInt(env, schema, argument, value);
    size_t count = argument.N() ? static_cast<size_t>(*argument.N()) : 1;
    return c10::IValue(std::vector<int64_t>(count, repeated));
  }
  if (!value.IsArray()) argumentError(env, schema, argument, "an array");
  auto array = value.As<Napi::Array>();
  uint32_t length = array.Length();
  switch (kind) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> ints(length);
      for (uint32_t i = 0; i < length; i++) ints[i] = toInt(env, schema, argument, array.Get(i));
      return c10::IValue(std::move(ints));
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> doubles(length);
      for (uint32_t i = 0; i < length; i++) {
        auto item = array.Get(i);
        if (!item.IsNumber()) argumentError(env, schema, argument, "an array of numbers");
        doubles[i] = item.As<Napi::Number>().DoubleValue();
      }
      return c10::IValue(std::move(doubles));
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> bools;
      for (uint32_t i = 0; i < length; i++) bools.push_back(array.Get(i).ToBoolean());
      return c10::IValue(std::move(bools));
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> tensors;
      tensors.reserve(length);
      for (uint32_t i = 0; i < length; i++) tensors.push_back(unwrapTensor(array.Get(i), argument.name().c_str()));
      return c10::IValue(std::move(tensors));
    }
    case c10::TypeKind::OptionalType: {
      c10::List<c10::optional<at::Tensor>> tensors;
      for (uint32_t i = 0; i < length; i++) {
        auto item = array.Get(i);
        if (item.IsNull() || item.IsUndefined()) {
          tensors.push_back(c10::nullopt);
        } else {
          tensors.push_back(unwrapTensor(item, argument.name().c_str()));
        }
      }
      return c10::IValue(std::move(tensors));
    }
    default:
      argumentError(env, schema, argument, "a list of a supported type, got " + listType.str());
  }
}

c10::IValue toIValue(Napi::Env env, const c10::FunctionSchema& schema, const c10::Argument& argument,
                     const c10::TypePtr& type, const Napi::Value& value) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      if (value.IsArray()) {
        // [number] in a tensor position is a Python-style wrapped number: `x + 1.0` calls
        // add.Tensor with a 0-dim tensor flagged as a wrapped number, which keeps x's dtype and
        // skips add.Scalar's extra dispatch (measured: 2x slower per call).
        auto item = value.As<Napi::Array>().Get(0u);
        if (!item.IsNumber() && !item.IsBoolean()) argumentError(env, schema, argument, "a tensor or [number]");
        at::Tensor wrapped;
        if (item.IsBoolean()) {
          wrapped = at::scalar_to_tensor(c10::Scalar(item.As<Napi::Boolean>().Value()));
        } else {
          double number = item.As<Napi::Number>().DoubleValue();
          bool integral = std::abs(number) < 9.0e15 && number == static_cast<double>(static_cast<int64_t>(number));
          wrapped = integral ? at::scalar_to_tensor(c10::Scalar(static_cast<int64_t>(number))) : at::scalar_to_tensor(c10::Scalar(number));
        }
        wrapped.unsafeGetTensorImpl()->set_wrapped_number(true);
        return c10::IValue(std::move(wrapped));
      }
      return c10::IValue(unwrapTensor(value, argument.name().c_str()));
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
      return c10::IValue(toInt(env, schema, argument, value));
    case c10::TypeKind::FloatType:
      if (!value.IsNumber()) argumentError(env, schema, argument, "a number");
      return c10::IValue(value.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      if (!value.IsBoolean() && !value.IsNumber()) argumentError(env, schema, argument, "a boolean");
      return c10::IValue(value.ToBoolean().Value());
    case c10::TypeKind::NumberType: {
      // A Scalar: JS integers become int64 scalars so integer tensors keep their dtype.
      if (value.IsBoolean()) return c10::IValue(value.As<Napi::Boolean>().Value());
      if (!value.IsNumber()) argumentError(env, schema, argument, "a number");
      double number = value.As<Napi::Number>().DoubleValue();
      if (std::abs(number) < 9.0e15 && number == static_cast<double>(static_cast<int64_t>(number))) {
        return c10::IValue(static_cast<int64_t>(number));
      }
      return c10::IValue(number);
    }
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return c10::IValue(toInt(env, schema, argument, value));
    case c10::TypeKind::StringType:
      if (!value.IsString()) argumentError(env, schema, argument, "a string");
      return c10::IValue(value.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType: {
      if (!value.IsString()) argumentError(env, schema, argument, "a device string such as 'cpu' or 'cuda:0'");
      auto text = value.As<Napi::String>().Utf8Value();
      try {
        return c10::IValue(c10::Device(text));
      } catch (const c10::Error&) {
        argumentError(env, schema, argument, "a device such as 'cpu', 'cuda' or 'cuda:0', got '" + text + "'");
      }
    }
    case c10::TypeKind::ListType:
      return toList(env, schema, argument, *type->expect<c10::ListType>(), value);
    case c10::TypeKind::OptionalType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      return toIValue(env, schema, argument, type->expect<c10::OptionalType>()->getElementType(), value);
    case c10::TypeKind::GeneratorType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      argumentError(env, schema, argument, "no generator (pass null)");
    default:
      argumentError(env, schema, argument, "a supported type; " + type->str() + " is not supported");
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) return wrapTensor(env, value.toTensor());
  if (value.isNone()) return env.Null();
  if (value.isInt()) return Napi::Number::New(env, static_cast<double>(value.toInt()));
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isTensorList()) {
    auto list = value.toTensorList();
    auto array = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) array.Set(i, wrapTensor(env, list.get(i)));
    return array;
  }
  if (value.isIntList()) {
    auto list = value.toIntList();
    auto array = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) array.Set(i, Napi::Number::New(env, static_cast<double>(list.get(i))));
    return array;
  }
  if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    auto array = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); i++) array.Set(i, fromIValue(env, elements[i]));
    return array;
  }
  if (value.isScalar()) return Napi::Number::New(env, value.toScalar().toDouble());
  throw Napi::TypeError::New(env, std::string("unsupported return type ") + value.tagKind());
}

std::string describeCall(const c10::FunctionSchema& schema, const torch::jit::Stack& stack) {
  std::ostringstream out;
  out << schema.name();
  if (!schema.overload_name().empty()) out << "." << schema.overload_name();
  out << "(";
  bool first = true;
  for (size_t i = 0; i < stack.size() && i < schema.arguments().size(); i++) {
    const auto& value = stack[i];
    if (value.isTensor()) {
      out << (first ? "" : ", ") << schema.arguments()[i].name() << ": " << describeTensor(value.toTensor());
      first = false;
    } else if (value.isIntList()) {
      out << (first ? "" : ", ") << schema.arguments()[i].name() << ": [" << c10::Join(", ", value.toIntVector()) << "]";
      first = false;
    }
  }
  out << ")";
  return out.str();
}

// findOperator(name, overload) -> id; throws when no such operator is registered.
Napi::Value FindOperator(const Napi::CallbackInfo& info) {
  auto name = info[0].As<Napi::String>().Utf8Value();
  auto overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string();
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    auto error = Napi::Error::New(info.Env(), "unknown operator " + name + (overload.empty() ? "" : "." + overload));
    error.Set("code", Napi::String::New(info.Env(), "ERR_UNKNOWN_OPERATOR"));
    throw error;
  }
  operatorTable(info.Env()).push_back(*handle);
  return Napi::Number::New(info.Env(), static_cast<double>(operatorTable(info.Env()).size() - 1));
}

// operatorTypes(id) -> {arguments: string[], returns: string[]}, e.g. "Tensor", "int[]", "Tensor?".
Napi::Value OperatorTypes(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const auto& schema = operatorAt(info.Env(), info[0]).schema();
  auto toArray = [&](const std::vector<c10::Argument>& list) {
    auto array = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) array.Set(i, Napi::String::New(env, list[i].type()->str()));
    return array;
  };
  auto result = Napi::Object::New(env);
  result.Set("arguments", toArray(schema.arguments()));
  result.Set("returns", toArray(schema.returns()));
  return result;
}

Napi::Value OperatorSchema(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), c10::toString(operatorAt(info.Env(), info[0]).schema()));
}

// call(id, discardResult, ...args) -> result. Missing trailing arguments take the schema's
// defaults; discardResult skips wrapping the output (in-place operators return their input).
// Arguments come as JS call arguments, not an array: no array to build or read per call.
Napi::Value Call(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto id = info[0].As<Napi::Number>().Uint32Value();
  auto& operators = operatorTable(env);
  if (id >= operators.size()) throw Napi::RangeError::New(env, "call: unknown operator id");
  const auto& op = operators[id];
  const auto& schema = op.schema();
  const auto& arguments = schema.arguments();
  constexpr uint32_t kFirstArgument = 2;
  uint32_t given = info.Length() > kFirstArgument ? static_cast<uint32_t>(info.Length()) - kFirstArgument : 0;
  if (given > arguments.size()) {
    throw Napi::TypeError::New(env, schema.name() + ": expected at most " + std::to_string(arguments.size()) +
                                        " arguments, got " + std::to_string(given) + " (schema: " + c10::toString(schema) + ")");
  }
  torch::jit::Stack stack;
  stack.reserve(arguments.size());
  for (size_t i = 0; i < arguments.size(); i++) {
    const auto& argument = arguments[i];
    Napi::Value value = i < given ? info[kFirstArgument + i] : env.Undefined();
    if (value.IsUndefined() && argument.default_value()) {
      stack.push_back(*argument.default_value());
    } else if (value.IsUndefined() && argument.type()->kind() != c10::TypeKind::OptionalType) {
      argumentError(env, schema, argument, "a value (it has no default)");
    } else {
      stack.push_back(toIValue(env, schema, argument, argument.type(), value));
    }
  }
  bool discard = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  try {
    op.callBoxed(&stack);
  } catch (const c10::Error& error) {
    auto jsError = Napi::Error::New(env, describeCall(schema, stack) + ": " + error.what_without_backtrace());
    jsError.Set("code", Napi::String::New(env, "ERR_TORCH"));
    jsError.Set("op", Napi::String::New(env, schema.name()));
    throw jsError;
  } catch (const std::exception& error) {
    auto jsError = Napi::Error::New(env, describeCall(schema, stack) + ": " + error.what());
    jsError.Set("code", Napi::String::New(env, "ERR_TORCH"));
    jsError.Set("op", Napi::String::New(env, schema.name()));
    throw jsError;
  }
  if (discard) return env.Undefined();
  if (stack.size() == 1) return fromIValue(env, stack[0]);
  auto results = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) results.Set(i, fromIValue(env, stack[i]));
  return results;
}

}  // namespace

void initOperators(Napi::Env env, Napi::Object exports) {
  exports.Set("findOperator", Napi::Function::New(env, FindOperator, "findOperator"));
  exports.Set("operatorSchema", Napi::Function::New(env, OperatorSchema, "operatorSchema"));
  exports.Set("operatorTypes", Napi::Function::New(env, OperatorTypes, "operatorTypes"));
  exports.Set("call", Napi::Function::New(env, Call, "call"));
}

}  // namespace stcnet
