// Distributed data parallelism on libtorch's own c10d: a TCPStore rendezvous, a ProcessGroupGloo
// for the collectives (all-reduce, broadcast, all-gather, barrier) and the DDP Reducer that
// all-reduces gradients in buckets while backward still runs. No protocol of our own.
//
// Collectives run on libuv's thread pool and resolve a promise, so the Node event loop (signal
// handlers, loader threads' messages, timers) keeps turning while a rank waits for the others.
// Every wait is bounded by the group's timeout: Gloo turns a peer that died into an error at once
// (its socket closes) and a peer that hangs into an error after the timeout.
#include "handle.h"
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/custom_function.h>
#ifdef USE_C10D_NCCL
// Only where a CUDA libtorch provides NCCL (scripts/libtorch-config.cjs defines it); untested here.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <c10/cuda/CUDAFunctions.h>
#endif
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <csignal>
#include <pthread.h>

namespace stcnet {

namespace {

using Millis = std::chrono::milliseconds;

// One process group: its store (rendezvous, heartbeats), Gloo's group, and the rank's place.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  int rank = 0;
  int size = 1;
  Millis timeout{30000};
  std::unique_ptr<c10d::Reducer> reducer;
  // A thread that bumps this rank's heartbeat counter in the store once a second, so that after a
  // failed collective the survivors can tell which ranks stopped answering (dead or frozen).
  std::thread heartbeat;
  std::mutex heartbeatMutex;
  std::condition_variable heartbeatWake;
  bool stopping = false;
  // How many collectives this rank has entered (set from JS before each); the heartbeat publishes
  // it, so after a timeout the ranks that never arrived are those behind the others.
  std::atomic<int64_t> arrivals{0};

  std::string where() const { return "rank " + std::to_string(rank) + " of " + std::to_string(size); }

  void stopHeartbeat() {
    {
      std::lock_guard<std::mutex> lock(heartbeatMutex);
      stopping = true;
    }
    heartbeatWake.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }
  ~Group() {
    reducer.reset();
    stopHeartbeat();
  }
};

// Groups and hosted stores by id. Touched from the main thread only; workers hold shared_ptrs.
std::mutex tableMutex;
std::unordered_map<int, std::shared_ptr<Group>> groups;
std::unordered_map<int, c10::intrusive_ptr<c10d::TCPStore>> hostedStores;
int nextId = 1;

std::string heartbeatKey(int rank) { return "stcnet/heartbeat/" + std::to_string(rank); }
std::string arrivalsKey(int rank) { return "stcnet/arrivals/" + std::to_string(rank); }

std::vector<uint8_t> bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

std::shared_ptr<Group> findGroup(const Napi::Value& value, const char* what) {
  int id = value.IsNumber() ? value.As<Napi::Number>().Int32Value() : -1;
  std::lock_guard<std::mutex> lock(tableMutex);
  auto found = groups.find(id);
  if (found == groups.end()) {
    auto error = Napi::Error::New(value.Env(), std::string(what) + ": not a live process group (destroyed, or never made)");
    error.Set("code", Napi::String::New(value.Env(), "ERR_ARGUMENT"));
    throw error;
  }
  return found->second;
}

// Runs `body` on libuv's thread pool and settles a promise: `result` makes the value on the main
// thread; an exception rejects with an Error whose message starts with `context` (code ERR_DISTRIBUTED).
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::string context, std::function<void()> body, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), context_(std::move(context)),
        body_(std::move(body)), result_(std::move(result)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      body_();
    } catch (const c10::Error& error) {
      SetError(context_ + ": " + error.what_without_backtrace());
    } catch (const std::exception& error) {
      SetError(context_ + ": " + error.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }
  void OnError(const Napi::Error& error) override {
    Napi::HandleScope scope(Env());
    auto value = error.Value();
    value.Set("code", Napi::String::New(Env(), "ERR_DISTRIBUTED"));
    deferred_.Reject(value);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string context_;
  std::function<void()> body_;
  std::function<Napi::Value(Napi::Env)> result_;
};

Napi::Promise queue(Napi::Env env, std::string context, std::function<void()> body, std::function<Napi::Value(Napi::Env)> result = nullptr) {
  auto* task = new Task(env, std::move(context), std::move(body), std::move(result));
  auto promise = task->promise();
  task->Queue();
  return promise;
}

std::vector<at::Tensor> tensorList(const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), std::string(what) + ": expected an array of tensor handles");
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < array.Length(); i++) {
    auto& tensor = unwrapTensor(array.Get(i), what);
    if (!tensor.is_contiguous()) {
      throw Napi::Error::New(value.Env(), std::string(what) + ": tensors must be contiguous, got " + describeTensor(tensor));
    }
    tensors.push_back(tensor);
  }
  return tensors;
}

void waitAll(std::vector<c10::intrusive_ptr<c10d::Work>>& works, Millis timeout) {
  for (auto& work : works) work->wait(timeout);
}

// One collective per tensor (`issue` starts it on a one-tensor list), then waits for them all:
// tensors of any dtypes and shapes, without flattening them into one buffer.
template <typename Issue>
void eachTensor(const std::vector<at::Tensor>& tensors, Millis timeout, Issue issue) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& tensor : tensors) {
    std::vector<at::Tensor> one{tensor};
    works.push_back(issue(one));
  }
  waitAll(works, timeout);
}

bool isLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The network device Gloo's pairs use: GLOO_SOCKET_IFNAME as in PyTorch; loopback when the
// rendezvous is on this machine; else this machine's hostname (PyTorch's default).
std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& masterHost) {
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface != nullptr && *interface != '\0') return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (isLoopback(masterHost)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

int32_t intOption(const Napi::Object& options, const char* key) {
  auto value = options.Get(key);
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string("distInit: option ") + key + " must be a number");
  return value.As<Napi::Number>().Int32Value();
}

// distInit({host, port, rank, worldSize, timeoutMs, hostStore, backend, localRank}) -> Promise<group id>.
// backend: "gloo" (CPU tensors), or "nccl" (CUDA tensors; only in an addon built with NCCL).
// hostStore: this rank runs the TCPStore server (rank 0 under plain torchrun variables); else it
// connects to the one at host:port (rank 0's, or a launcher's).
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "distInit: expected an options object");
  auto options = info[0].As<Napi::Object>();
  std::string host = options.Get("host").ToString().Utf8Value();
  int port = intOption(options, "port");
  int rank = intOption(options, "rank");
  int size = intOption(options, "worldSize");
  int timeoutMs = intOption(options, "timeoutMs");
  bool hostStore = options.Get("hostStore").ToBoolean();
  std::string backend = options.Has("backend") && options.Get("backend").IsString() ? options.Get("backend").ToString().Utf8Value() : "gloo";
  int localRank = options.Has("localRank") && options.Get("localRank").IsNumber() ? options.Get("localRank").As<Napi::Number>().Int32Value() : 0;
  if (backend != "gloo" && backend != "nccl") throw Napi::TypeError::New(env, "distInit: backend must be gloo or nccl, got " + backend);
#ifndef USE_C10D_NCCL
  if (backend == "nccl") {
    throw Napi::Error::New(env, "distInit: this addon was built without NCCL (it needs a CUDA libtorch that has ProcessGroupNCCL; see docs/distributed.md)");
  }
#endif
  auto group = std::make_shared<Group>();
  group->rank = rank;
  group->size = size;
  group->timeout = Millis(timeoutMs);
  std::string context = "rendezvous at " + host + ":" + std::to_string(port) + " (" + group->where() + ")";
  (void)localRank;
  return queue(env, context, [=] {
    // Threads inherit their creator's signal mask: with Ctrl-C and SIGTERM blocked here, none of
    // the threads made below (the store's, Gloo's, the heartbeat) can take a signal meant for
    // Node's handler, which then always runs on a thread of Node's own.
    sigset_t blocked, previous;
    sigemptyset(&blocked);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&blocked, signal);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    struct Restore {
      sigset_t mask;
      ~Restore() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
    } restore{previous};
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(port);
    storeOptions.isServer = hostStore;
    storeOptions.numWorkers = size;
    storeOptions.waitWorkers = true;
    storeOptions.timeout = group->timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(host, storeOptions);
    group->store = store;
    // A prefix keeps the backend's rendezvous keys apart from ours (heartbeats).
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(backend, group->store);
#ifdef USE_C10D_NCCL
    if (backend == "nccl") {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(localRank));  // one GPU per process
      auto ncclOptions = c10d::ProcessGroupNCCL::Options::create();
      ncclOptions->timeout = group->timeout;
      group->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, size, ncclOptions);
    }
#endif
    if (!group->pg) {
      auto pgOptions = c10d::ProcessGroupGloo::Options::create(group->timeout);
      pgOptions->devices.push_back(glooDevice(host));
      pgOptions->threads = 2;
      group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, pgOptions);
    }
    group->store->set(heartbeatKey(rank), std::vector<uint8_t>{'0'});
    group->store->set(arrivalsKey(rank), std::vector<uint8_t>{'0'});
    Group* raw = group.get();
    group->heartbeat = std::thread([raw] {
      std::unique_lock<std::mutex> lock(raw->heartbeatMutex);
      while (!raw->heartbeatWake.wait_for(lock, std::chrono::seconds(1), [raw] { return raw->stopping; })) {
        try {
          raw->store->add(heartbeatKey(raw->rank), 1);
          raw->store->set(arrivalsKey(raw->rank), bytes(std::to_string(raw->arrivals.load())));
        } catch (const std::exception&) {
          return;  // the store is gone (its host died): nothing left to tell
        }
      }
    });
  }, [group](Napi::Env env) -> Napi::Value {
    std::lock_guard<std::mutex> lock(tableMutex);
    int id = nextId++;
    groups[id] = group;
    return Napi::Number::New(env, id);
  });
}

// distHostStore(port, timeoutMs) -> store id: a TCPStore server for workers to join (the launcher's,
// as torchrun's agent hosts one), so the store outlives any worker and can say who stopped.
Napi::Value DistHostStore(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int port = info[0].As<Napi::Number>().Int32Value();
  int timeoutMs = info[1].As<Napi::Number>().Int32Value();
  return guard(env, "rendezvous store on port " + std::to_string(port), [&]() -> Napi::Value {
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(port);
    storeOptions.isServer = true;
    storeOptions.waitWorkers = false;
    storeOptions.timeout = Millis(timeoutMs);
    auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", storeOptions);
    std::lock_guard<std::mutex> lock(tableMutex);
    int id = nextId++;
    hostedStores[id] = store;
    auto result = Napi::Object::New(env);
    result.Set("id", Napi::Number::New(env, id));
    result.Set("port", Napi::Number::New(env, store->getPort()));
    return result;
  });
}

Napi::Value DistCloseStore(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(tableMutex);
  hostedStores.erase(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// distDestroy(id): stops the heartbeat and drops the group (its sockets close).
Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  std::shared_ptr<Group> group;
  {
    std::lock_guard<std::mutex> lock(tableMutex);
    int id = info[0].As<Napi::Number>().Int32Value();
    auto found = groups.find(id);
    if (found == groups.end()) return info.Env().Undefined();
    group = found->second;
    groups.erase(found);
  }
  group->stopHeartbeat();
  return info.Env().Undefined();
}

c10d::ReduceOp reduceOp(const Napi::Value& value) {
  std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "sum";
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw Napi::TypeError::New(value.Env(), "distAllReduce: op must be sum, max or min, got " + name);
}

// distAllReduce(id, handles, op) -> Promise: each tensor reduced in place across the ranks.
Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distAllReduce");
  auto tensors = tensorList(info[1], "distAllReduce");
  auto op = reduceOp(info[2]);
  return queue(info.Env(), "all-reduce (" + group->where() + ")", [group, tensors, op] {
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    eachTensor(tensors, group->timeout, [&](std::vector<at::Tensor>& one) { return group->pg->allreduce(one, options); });
  });
}

// distBroadcast(id, handles, root) -> Promise: root's tensors copied into every rank's, in place.
Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distBroadcast");
  auto tensors = tensorList(info[1], "distBroadcast");
  int root = info[2].As<Napi::Number>().Int32Value();
  return queue(info.Env(), "broadcast from rank " + std::to_string(root) + " (" + group->where() + ")", [group, tensors, root] {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    eachTensor(tensors, group->timeout, [&](std::vector<at::Tensor>& one) { return group->pg->broadcast(one, options); });
  });
}

// distAllGather(id, handle) -> Promise<handle>: every rank's tensor (same shape on all), stacked
// along a new first dimension in rank order.
Napi::Value DistAllGather(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distAllGather");
  auto input = unwrapTensor(info[1], "distAllGather").contiguous();
  auto output = std::make_shared<at::Tensor>();
  return queue(info.Env(), "all-gather of " + describeTensor(input) + " (" + group->where() + ")", [group, input, output] {
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < group->size; r++) outputs[0].push_back(at::empty_like(input));
    std::vector<at::Tensor> inputs{input};
    auto work = group->pg->allgather(outputs, inputs);
    work->wait(group->timeout);
    *output = at::stack(outputs[0], 0);
  }, [output](Napi::Env env) { return wrapTensor(env, *output); });
}

// distBarrier(id) -> Promise: resolves once every rank has reached it.
Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distBarrier");
  return queue(info.Env(), "barrier (" + group->where() + ")", [group] {
    group->pg->barrier()->wait(group->timeout);
  });
}

// distSilentRanks(id, waitMs) -> Promise<{silent, behind, storeReachable}>: the ranks whose
// heartbeat did not move in waitMs (dead or frozen), and the live ones that entered fewer
// collectives than this rank (busy elsewhere, never arrived); after a failed collective this names
// the rank that broke it.
Napi::Value DistSilentRanks(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distSilentRanks");
  int waitMs = info[1].As<Napi::Number>().Int32Value();
  auto silent = std::make_shared<std::vector<int>>();
  auto behind = std::make_shared<std::vector<int>>();
  auto reachable = std::make_shared<bool>(true);
  return queue(info.Env(), "heartbeat check (" + group->where() + ")", [group, waitMs, silent, behind, reachable] {
    auto read = [&](std::vector<int64_t>& counts) {
      counts.clear();
      for (int r = 0; r < group->size; r++) counts.push_back(group->store->add(heartbeatKey(r), 0));
    };
    std::vector<int64_t> before, after, arrived;
    try {
      group->store->setTimeout(Millis(std::max(1000, waitMs)));
      read(before);
      std::this_thread::sleep_for(Millis(waitMs));
      read(after);
      for (int r = 0; r < group->size; r++) {
        auto value = group->store->get(arrivalsKey(r));
        arrived.push_back(std::stoll(std::string(value.begin(), value.end())));
      }
    } catch (const std::exception&) {
      *reachable = false;
      return;
    }
    const int64_t mine = group->arrivals.load();
    for (int r = 0; r < group->size; r++) {
      if (r == group->rank) continue;
      if (after[r] == before[r]) silent->push_back(r);
      else if (arrived[r] < mine) behind->push_back(r);
    }
  }, [silent, behind, reachable](Napi::Env env) -> Napi::Value {
    auto result = Napi::Object::New(env);
    auto list = Napi::Array::New(env, silent->size());
    for (size_t i = 0; i < silent->size(); i++) list.Set(i, Napi::Number::New(env, (*silent)[i]));
    result.Set("silent", list);
    auto late = Napi::Array::New(env, behind->size());
    for (size_t i = 0; i < behind->size(); i++) late.Set(i, Napi::Number::New(env, (*behind)[i]));
    result.Set("behind", late);
    result.Set("storeReachable", Napi::Boolean::New(env, *reachable));
    return result;
  });
}

// distArrive(id): this rank enters its next collective (see Group::arrivals).
Napi::Value DistArrive(const Napi::CallbackInfo& info) {
  findGroup(info[0], "distArrive")->arrivals++;
  return info.Env().Undefined();
}

// --- gradients: the DDP Reducer ---

// distReducer(id, paramHandles, bucketBytes, firstBucketBytes): hooks c10d's Reducer onto the
// parameters' gradient accumulators, with buckets assigned as PyTorch's DistributedDataParallel
// does (parameters in reverse order, the first bucket small so communication starts early).
Napi::Value DistReducer(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distReducer");
  auto params = tensorList(info[1], "distReducer");
  int64_t bucketBytes = info[2].As<Napi::Number>().Int64Value();
  int64_t firstBucketBytes = info[3].As<Napi::Number>().Int64Value();
  guard(info.Env(), "distReducer (" + group->where() + ")", [&] {
    std::vector<bool> sparse(params.size(), false);
    std::vector<at::Tensor> reversed(params.rbegin(), params.rend());
    std::vector<int64_t> order;
    for (int64_t i = static_cast<int64_t>(params.size()) - 1; i >= 0; i--) order.push_back(i);
    auto assignment = c10d::compute_bucket_assignment_by_size(
        reversed, {static_cast<size_t>(firstBucketBytes), static_cast<size_t>(bucketBytes)}, sparse, order);
    auto buckets = std::get<0>(assignment);
    auto limits = std::get<1>(assignment);
    group->reducer.reset();
    group->reducer = std::make_unique<c10d::Reducer>(params, buckets, limits, group->pg, sparse, bucketBytes,
                                                     /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false,
                                                     std::unordered_map<size_t, std::string>{}, firstBucketBytes);
  });
  return info.Env().Undefined();
}

// distReducerPrepare(id): the next backward all-reduces the gradients (averaged over the ranks)
// as their buckets fill; without it (gradient accumulation steps) backward only accumulates.
Napi::Value DistReducerPrepare(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distReducerPrepare");
  if (!group->reducer) throw Napi::Error::New(info.Env(), "distReducerPrepare: no reducer on this group (distReducer first)");
  guard(info.Env(), "distReducerPrepare (" + group->where() + ")", [&] {
    // As DistributedDataParallel.forward does: after the first backward the buckets are rebuilt
    // once in the order gradients became ready (rank 0's order, broadcast); until then the Reducer
    // records that order, which it stops doing once rebuilt.
    group->reducer->rebuild_buckets();
    group->reducer->prepare_for_forward();
    group->reducer->prepare_for_backward({});
  });
  return info.Env().Undefined();
}

// --- synchronised BatchNorm ---

// Batch statistics over every rank's batch: the per-channel sum, sum of squares and count are
// all-reduced in forward, and the two per-channel gradient sums in backward, so the result equals
// BatchNorm over the concatenated batch. Blocks the calling thread (it runs inside forward and
// inside autograd), bounded by the group's timeout.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor input, at::Tensor weight, at::Tensor bias,
                            at::Tensor runningMean, at::Tensor runningVar, double momentum, double eps, int64_t groupId) {
    std::shared_ptr<Group> group;
    {
      std::lock_guard<std::mutex> lock(tableMutex);
      group = groups.at(static_cast<int>(groupId));
    }
    const int64_t channels = input.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < input.dim(); d++) dims.push_back(d);
    const double localCount = static_cast<double>(input.numel() / channels);
    auto x = input.to(at::kDouble);
    auto stats = at::cat({x.sum(dims), (x * x).sum(dims), at::full({1}, localCount, x.options())}).contiguous();
    std::vector<at::Tensor> one{stats};
    group->pg->allreduce(one)->wait(group->timeout);
    const double count = stats[2 * channels].item<double>();
    auto mean = stats.slice(0, 0, channels) / count;
    auto var = stats.slice(0, channels, 2 * channels) / count - mean * mean;
    {
      at::NoGradGuard noGrad;
      runningMean.mul_(1 - momentum).add_(mean.to(runningMean.scalar_type()), momentum);
      runningVar.mul_(1 - momentum).add_((var * (count / std::max(1.0, count - 1))).to(runningVar.scalar_type()), momentum);
    }
    std::vector<int64_t> shape(input.dim(), 1);
    shape[1] = channels;
    auto invstd = (var + eps).rsqrt();
    auto xhat = ((x - mean.view(shape)) * invstd.view(shape)).to(input.scalar_type());
    ctx->save_for_backward({xhat, weight, invstd.to(input.scalar_type())});
    ctx->saved_data["group"] = groupId;
    ctx->saved_data["count"] = count;
    return xhat * weight.view(shape) + bias.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto xhat = saved[0];
    auto weight = saved[1];
    auto invstd = saved[2];
    auto groupId = ctx->saved_data["group"].toInt();
    double count = ctx->saved_data["count"].toDouble();
    std::shared_ptr<Group> group;
    {
      std::lock_guard<std::mutex> lock(tableMutex);
      group = groups.at(static_cast<int>(groupId));
    }
    auto dy = grads[0];
    const int64_t channels = xhat.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < xhat.dim(); d++) dims.push_back(d);
    std::vector<int64_t> shape(xhat.dim(), 1);
    shape[1] = channels;
    // Local parts: the bias and weight gradients are this rank's own (DDP's reducer averages them
    // like any parameter's); the input gradient needs the sums over every rank's batch.
    auto sumDy = dy.sum(dims);
    auto sumDyXhat = (dy * xhat).sum(dims);
    auto global = at::cat({sumDy, sumDyXhat}).to(at::kDouble).contiguous();
    std::vector<at::Tensor> one{global};
    group->pg->allreduce(one)->wait(group->timeout);
    auto meanDy = (global.slice(0, 0, channels) / count).to(dy.scalar_type());
    auto meanDyXhat = (global.slice(0, channels, 2 * channels) / count).to(dy.scalar_type());
    auto dx = (dy - meanDy.view(shape) - xhat * meanDyXhat.view(shape)) * (invstd * weight).view(shape);
    return {dx, sumDyXhat, sumDy, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// distSyncBatchNorm(id, input, weight, bias, runningMean, runningVar, momentum, eps) -> handle.
Napi::Value DistSyncBatchNorm(const Napi::CallbackInfo& info) {
  auto group = findGroup(info[0], "distSyncBatchNorm");
  int64_t id = info[0].As<Napi::Number>().Int64Value();
  auto& input = unwrapTensor(info[1], "distSyncBatchNorm");
  auto& weight = unwrapTensor(info[2], "distSyncBatchNorm");
  auto& bias = unwrapTensor(info[3], "distSyncBatchNorm");
  auto& runningMean = unwrapTensor(info[4], "distSyncBatchNorm");
  auto& runningVar = unwrapTensor(info[5], "distSyncBatchNorm");
  double momentum = info[6].As<Napi::Number>().DoubleValue();
  double eps = info[7].As<Napi::Number>().DoubleValue();
  return guard(info.Env(), "synchronised batch norm of " + describeTensor(input) + " (" + group->where() + ")", [&] {
    return wrapTensor(info.Env(), SyncBatchNorm::apply(input, weight, bias, runningMean, runningVar, momentum, eps, id));
  });
}

}  // namespace

void initDistributed(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Value (*callback)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, callback, name));
  };
  fn("distInit", DistInit);
  fn("distHostStore", DistHostStore);
  fn("distCloseStore", DistCloseStore);
  fn("distDestroy", DistDestroy);
  fn("distAllReduce", DistAllReduce);
  fn("distBroadcast", DistBroadcast);
  fn("distAllGather", DistAllGather);
  fn("distBarrier", DistBarrier);
  fn("distSilentRanks", DistSilentRanks);
  fn("distArrive", DistArrive);
  fn("distReducer", DistReducer);
  fn("distReducerPrepare", DistReducerPrepare);
  fn("distSyncBatchNorm", DistSyncBatchNorm);
}

}  // namespace stcnet
