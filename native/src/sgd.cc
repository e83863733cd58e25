// One parameter's SGD update in place, torch.optim.SGD's operators in its order, called once per parameter
// instead of once per operator: sgdUpdate(param, grad, momentumBuffer|null, lr, momentum, dampening,
// weightDecay, nesterov, maximize). Its temporaries (the gradient plus weight decay, a parameter's size)
// never reach JS, so they are neither wrapped nor counted as V8 external memory, whose swings at a
// model's worth per step set off garbage collections in the middle of the step.
#include "handle.h"

namespace stcnet {
namespace {

Napi::Value SgdUpdate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() != 9) {
    throw Napi::TypeError::New(env, "sgdUpdate: expected (param, grad, momentumBuffer|null, lr, momentum, dampening, weightDecay, nesterov, maximize)");
  }
  at::Tensor& param = unwrapTensor(info[0], "sgdUpdate: param");
  const at::Tensor& grad = unwrapTensor(info[1], "sgdUpdate: grad");
  at::Tensor buffer = info[2].IsNull() ? at::Tensor() : unwrapTensor(info[2], "sgdUpdate: momentumBuffer");
  const double lr = info[3].As<Napi::Number>().DoubleValue(), momentum = info[4].As<Napi::Number>().DoubleValue();
  const double dampening = info[5].As<Napi::Number>().DoubleValue(), weightDecay = info[6].As<Napi::Number>().DoubleValue();
  const bool nesterov = info[7].As<Napi::Boolean>().Value(), maximize = info[8].As<Napi::Boolean>().Value();
  return guard(env, "sgdUpdate", [&]() -> Napi::Value {
    TORCH_CHECK(momentum == 0 || buffer.defined(), "a momentum buffer is needed with momentum ", momentum);
    at::NoGradGuard noGrad;
    at::Tensor direction = maximize ? grad.neg() : grad;
    if (weightDecay != 0) direction = direction.add(param, weightDecay);
    if (momentum != 0) {
      buffer.mul_(momentum).add_(direction, 1 - dampening);
      direction = nesterov ? direction.add(buffer, momentum) : buffer;
    }
    param.add_(direction, -lr);
    return env.Undefined();
  });
}

}  // namespace

void initSgd(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdUpdate", Napi::Function::New(env, SgdUpdate, "sgdUpdate"));
}

}  // namespace stcnet
