// Debian's libtorch-dev 1.13 ships c10d/reducer.hpp but not this header, which reducer.hpp includes
// for two names only: DistAutogradContext::GradCallback (checked equal to the Reducer's own
// std::function type) and ContextPtr (a shared_ptr held by the Reducer). Neither changes the
// Reducer's layout, so these declarations suffice to use the Reducer that libtorch_cpu contains.
// Only when a libtorch lacks the real header (a full libtorch, e.g. PyTorch's zip or pip wheel, has
// it), scripts/libtorch-config.cjs copies this file to build/compat/torch/csrc/distributed/autograd/
// context/context.h and puts build/compat on the include path.
#pragma once
#include <ATen/Tensor.h>
#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
