// p3s native core: libtorch behind a thin N-API surface.
//
// This file converts values and calls ATen's boxed dispatcher. Validation, defaults, error
// wording and every operator's typed signature live in TypeScript (src/engine/). Every entry
// point converts c10/std exceptions into JavaScript errors, so bad input never aborts Node.

#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/version.h>

#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::atomic<int64_t> g_live_tensors{0};

#define P3S_TRY try {
#define P3S_CATCH(env)                                                   \
  }                                                                      \
  catch (const Napi::Error&) {                                           \
    throw;                                                               \
  }                                                                      \
  catch (const c10::Error& e) {                                          \
    throw Napi::Error::New(env, e.what_without_backtrace());             \
  }                                                                      \
  catch (const std::exception& e) {                                      \
    throw Napi::Error::New(env, e.what());                               \
  }

// ---------------------------------------------------------------------------------------------
// Everything that holds JavaScript objects, or ids handed to one JavaScript environment, lives
// per environment (Node-API instance data): each worker_threads Worker loads the addon into its
// own environment, and a reference made in one must never be used from another thread, nor
// outlive the environment it belongs to. Node deletes it when its environment exits.
struct AddonData {
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference generatorClass;
  // Operators: looked up once by (name, overload), then called by integer id.
  std::vector<c10::OperatorHandle> ops;
  std::vector<std::string> opNames;
};

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Tensor handle: owns one at::Tensor reference until disposed or garbage-collected.
class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "TensorHandle", {});
    Data(env).tensorClass = Napi::Persistent(fn);
    return fn;
  }

  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor) {
    Napi::Object obj = Data(env).tensorClass.New({});
    TensorHandle* handle = Unwrap(obj);
    handle->tensor_ = std::move(tensor);
    handle->alive_ = true;
    g_live_tensors++;
    return obj;
  }

  explicit TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}
  ~TensorHandle() override { Release(); }

  void Release() {
    if (alive_) {
      alive_ = false;
      tensor_ = at::Tensor();
      g_live_tensors--;
    }
  }

  bool alive() const { return alive_; }
  const at::Tensor& tensor() const { return tensor_; }

 private:
  at::Tensor tensor_;
  bool alive_ = false;
};

// Generator handle: a random-number generator with its own seed and state.
class GeneratorHandle : public Napi::ObjectWrap<GeneratorHandle> {
 public:
  static Napi::Function Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "GeneratorHandle", {});
    Data(env).generatorClass = Napi::Persistent(fn);
    return fn;
  }
  static Napi::Object Wrap(Napi::Env env, at::Generator gen) {
    Napi::Object obj = Data(env).generatorClass.New({});
    Unwrap(obj)->gen_ = std::move(gen);
    return obj;
  }
  explicit GeneratorHandle(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<GeneratorHandle>(info) {}
  at::Generator& gen() { return gen_; }

 private:
  at::Generator gen_;
};
bool IsTensor(Napi::Env env, const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(Data(env).tensorClass.Value());
}

bool IsGenerator(Napi::Env env, const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(Data(env).generatorClass.Value());
}

const at::Tensor& TensorArg(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!IsTensor(env, value)) {
    throw Napi::TypeError::New(env, std::string("Expected a tensor for ") + what);
  }
  TensorHandle* handle = TensorHandle::Unwrap(value.As<Napi::Object>());
  if (!handle->alive()) {
    throw Napi::Error::New(env, std::string("Tensor used after dispose (") + what + ")");
  }
  return handle->tensor();
}

int64_t IntArg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsNumber()) {
    throw Napi::TypeError::New(env, "Expected an integer for " + what);
  }
  double d = value.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::TypeError::New(env, "Expected an integer for " + what + " but received " +
                                        std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

std::vector<int64_t> IntListArg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "Expected an array of integers for " + what);
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = IntArg(env, arr.Get(i), what);
  return out;
}

at::ScalarType DtypeArg(Napi::Env env, const Napi::Value& value) {
  int64_t code = IntArg(env, value, "dtype");
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) {
    throw Napi::RangeError::New(env, "Unknown dtype code " + std::to_string(code));
  }
  return static_cast<at::ScalarType>(code);
}

// ---------------------------------------------------------------------------------------------
// JS value -> IValue, driven by the schema's declared type.
c10::IValue ToIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type,
                     const c10::optional<int32_t>& n, const std::string& name);

c10::IValue ScalarIValue(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (v.IsBoolean()) return c10::IValue(v.As<Napi::Boolean>().Value());
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "Expected a number for " + name);
  double d = v.As<Napi::Number>().DoubleValue();
  // Integral values stay integral so integer tensors keep their dtype under promotion.
  if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) &&
      std::abs(d) < 9007199254740992.0) {
    return c10::IValue(static_cast<int64_t>(d));
  }
  return c10::IValue(d);
}

c10::IValue ListIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& elem,
                       const c10::optional<int32_t>& n, const std::string& name) {
  c10::TypeKind kind = elem->kind();
  // A single number where a fixed-size list is expected is repeated, as in PyTorch (stride=1).
  if (!v.IsArray()) {
    if ((kind == c10::TypeKind::IntType || kind == c10::TypeKind::SymIntType) && v.IsNumber()) {
      int64_t x = IntArg(env, v, name);
      return c10::IValue(c10::List<int64_t>(std::vector<int64_t>(n.value_or(1), x)));
    }
    if (kind == c10::TypeKind::FloatType && v.IsNumber()) {
      double x = v.As<Napi::Number>().DoubleValue();
      return c10::IValue(c10::List<double>(std::vector<double>(n.value_or(1), x)));
    }
    throw Napi::TypeError::New(env, "Expected an array for " + name);
  }
  Napi::Array arr = v.As<Napi::Array>();
  uint32_t len = arr.Length();
  switch (kind) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      c10::List<int64_t> list;
      list.reserve(len);
      for (uint32_t i = 0; i < len; i++) list.push_back(IntArg(env, arr.Get(i), name));
      return c10::IValue(std::move(list));
    }
    case c10::TypeKind::FloatType: {
      c10::List<double> list;
      for (uint32_t i = 0; i < len; i++) {
        Napi::Value x = arr.Get(i);
        if (!x.IsNumber()) throw Napi::TypeError::New(env, "Expected numbers for " + name);
        list.push_back(x.As<Napi::Number>().DoubleValue());
      }
      return c10::IValue(std::move(list));
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> list;
      for (uint32_t i = 0; i < len; i++) {
        Napi::Value x = arr.Get(i);
        if (!x.IsBoolean()) throw Napi::TypeError::New(env, "Expected booleans for " + name);
        list.push_back(x.As<Napi::Boolean>().Value());
      }
      return c10::IValue(std::move(list));
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> list;
      list.reserve(len);
      for (uint32_t i = 0; i < len; i++) list.push_back(TensorArg(env, arr.Get(i), name.c_str()));
      return c10::IValue(std::move(list));
    }
    case c10::TypeKind::OptionalType: {
      auto inner = elem->castRaw<c10::OptionalType>()->getElementType();
      if (inner->kind() == c10::TypeKind::TensorType) {
        c10::List<c10::optional<at::Tensor>> list;
        for (uint32_t i = 0; i < len; i++) {
          Napi::Value x = arr.Get(i);
          if (x.IsNull() || x.IsUndefined()) {
            list.push_back(c10::nullopt);
          } else {
            list.push_back(TensorArg(env, x, name.c_str()));
          }
        }
        return c10::IValue(std::move(list));
      }
      break;
    }
    default:
      break;
  }
  throw Napi::TypeError::New(env, "Unsupported list element type " + elem->str() + " for " + name);
}

c10::IValue ToIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type,
                     const c10::optional<int32_t>& n, const std::string& name) {
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return ToIValue(env, v, type->castRaw<c10::OptionalType>()->getElementType(), n, name);
    case c10::TypeKind::TensorType:
      return c10::IValue(TensorArg(env, v, name.c_str()));
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
      return c10::IValue(IntArg(env, v, name));
    case c10::TypeKind::FloatType:
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "Expected a number for " + name);
      return c10::IValue(v.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      if (!v.IsBoolean()) throw Napi::TypeError::New(env, "Expected a boolean for " + name);
      return c10::IValue(v.As<Napi::Boolean>().Value());
    case c10::TypeKind::NumberType:
      return ScalarIValue(env, v, name);
    case c10::TypeKind::StringType:
      if (!v.IsString()) throw Napi::TypeError::New(env, "Expected a string for " + name);
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) throw Napi::TypeError::New(env, "Expected a device string for " + name);
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::GeneratorType:
      if (!IsGenerator(env, v)) {
        throw Napi::TypeError::New(env, "Expected a Generator for " + name);
      }
      return c10::IValue(GeneratorHandle::Unwrap(v.As<Napi::Object>())->gen());
    case c10::TypeKind::ListType:
      return ListIValue(env, v, type->castRaw<c10::ListType>()->getElementType(), n, name);
    default:
      throw Napi::TypeError::New(env, "Unsupported argument type " + type->str() + " for " + name);
  }
}

// IValue -> JS value.
Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (!t.defined()) return env.Null();
    return TensorHandle::Wrap(env, t);
  }
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) arr.Set(i, FromIValue(env, elems[i]));
    return arr;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    Napi::Array arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(i, FromIValue(env, list[i]));
    return arr;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  if (v.isDevice()) return Napi::String::New(env, v.toDevice().str());
  std::ostringstream ss;
  ss << "Unsupported return value of type " << v.tagKind();
  throw Napi::Error::New(env, ss.str());
}

// ---------------------------------------------------------------------------------------------

Napi::Value FindOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  auto op = c10::Dispatcher::singleton().findOp(c10::OperatorName(name, overload));
  if (!op.has_value()) {
    throw Napi::Error::New(env, "Unknown operator " + name + (overload.empty() ? "" : "." + overload));
  }
  AddonData& data = Data(env);
  data.ops.push_back(*op);
  data.opNames.push_back(name + (overload.empty() ? "" : "." + overload));
  return Napi::Number::New(env, static_cast<double>(data.ops.size() - 1));
  P3S_CATCH(env)
}

const c10::OperatorHandle& OpArg(Napi::Env env, const Napi::Value& v) {
  int64_t id = IntArg(env, v, "operator id");
  const auto& ops = Data(env).ops;
  if (id < 0 || id >= static_cast<int64_t>(ops.size())) {
    throw Napi::RangeError::New(env, "Unknown operator id " + std::to_string(id));
  }
  return ops[id];
}

Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const c10::OperatorHandle& op = OpArg(env, info[0]);
  const std::string& opName = Data(env).opNames[IntArg(env, info[0], "operator id")];
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "Expected an argument array");
  Napi::Array args = info[1].As<Napi::Array>();
  const c10::FunctionSchema& schema = op.schema();
  const auto& params = schema.arguments();
  if (args.Length() > params.size()) {
    throw Napi::Error::New(env, opName + " takes at most " + std::to_string(params.size()) +
                                    " arguments but received " + std::to_string(args.Length()));
  }
  torch::jit::Stack stack;
  stack.reserve(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    const c10::Argument& p = params[i];
    Napi::Value v = i < args.Length() ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
    if (v.IsUndefined()) {
      if (p.default_value().has_value()) {
        stack.push_back(*p.default_value());
        continue;
      }
      if (p.type()->kind() == c10::TypeKind::OptionalType) {
        stack.emplace_back();
        continue;
      }
      throw Napi::Error::New(env, opName + ": missing argument '" + p.name() + "'");
    }
    stack.push_back(ToIValue(env, v, p.type(), p.N(), opName + " argument '" + p.name() + "'"));
  }
  op.callBoxed(&stack);
  if (stack.empty()) return env.Undefined();
  if (stack.size() == 1) return FromIValue(env, stack[0]);
  Napi::Array out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) out.Set(i, FromIValue(env, stack[i]));
  return out;
  P3S_CATCH(env)
}

Napi::Object DescribeArgument(Napi::Env env, const c10::Argument& a) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", a.name());
  o.Set("type", a.real_type()->annotation_str());
  o.Set("kwargOnly", a.kwarg_only());
  o.Set("mutable", a.alias_info() != nullptr && a.alias_info()->isWrite());
  if (a.N().has_value()) o.Set("n", *a.N());
  if (a.default_value().has_value()) {
    std::ostringstream ss;
    ss << *a.default_value();
    o.Set("default", ss.str());
  }
  return o;
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const c10::FunctionSchema& schema = OpArg(env, info[0]).schema();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", schema.name());
  o.Set("overload", schema.overload_name());
  Napi::Array args = Napi::Array::New(env, schema.arguments().size());
  for (size_t i = 0; i < schema.arguments().size(); i++)
    args.Set(i, DescribeArgument(env, schema.arguments()[i]));
  Napi::Array rets = Napi::Array::New(env, schema.returns().size());
  for (size_t i = 0; i < schema.returns().size(); i++)
    rets.Set(i, DescribeArgument(env, schema.returns()[i]));
  o.Set("arguments", args);
  o.Set("returns", rets);
  std::ostringstream ss;
  ss << schema;
  o.Set("text", ss.str());
  return o;
  P3S_CATCH(env)
}

Napi::Value AllOpNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  auto names = c10::Dispatcher::singleton().getAllOpNames();
  Napi::Array arr = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, names[i].name);
    pair.Set(1u, names[i].overload_name);
    arr.Set(i, pair);
  }
  return arr;
  P3S_CATCH(env)
}

// ---------------------------------------------------------------------------------------------
// Tensors <-> bytes.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  if (!info[0].IsTypedArray() && !info[0].IsDataView() && !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "Expected a typed array, DataView or ArrayBuffer");
  }
  const uint8_t* data = nullptr;
  size_t byte_length = 0;
  if (info[0].IsArrayBuffer()) {
    auto ab = info[0].As<Napi::ArrayBuffer>();
    data = static_cast<const uint8_t*>(ab.Data());
    byte_length = ab.ByteLength();
  } else if (info[0].IsTypedArray()) {
    auto ta = info[0].As<Napi::TypedArray>();
    data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    byte_length = ta.ByteLength();
  } else {
    auto dv = info[0].As<Napi::DataView>();
    data = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    byte_length = dv.ByteLength();
  }
  std::vector<int64_t> shape = IntListArg(env, info[1], "shape");
  at::ScalarType dtype = DtypeArg(env, info[2]);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t expected = static_cast<size_t>(t.numel()) * t.element_size();
  if (expected != byte_length) {
    throw Napi::RangeError::New(env, "Data holds " + std::to_string(byte_length) +
                                         " bytes but the shape and dtype need " +
                                         std::to_string(expected));
  }
  if (expected > 0) std::memcpy(t.data_ptr(), data, expected);
  return TensorHandle::Wrap(env, t);
  P3S_CATCH(env)
}

Napi::Value FromFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int64_t offset = IntArg(env, info[1], "offset");
  std::vector<int64_t> shape = IntListArg(env, info[2], "shape");
  at::ScalarType dtype = DtypeArg(env, info[3]);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw Napi::Error::New(env, "Cannot open " + path);
  bool ok = fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0;
  size_t got = ok && nbytes > 0 ? std::fread(t.data_ptr(), 1, nbytes, f) : 0;
  std::fclose(f);
  if (!ok || got != nbytes) {
    throw Napi::Error::New(env, "Short read from " + path + ": expected " + std::to_string(nbytes) +
                                    " bytes at offset " + std::to_string(offset) + ", got " +
                                    std::to_string(got));
  }
  return TensorHandle::Wrap(env, t);
  P3S_CATCH(env)
}

Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  at::Tensor t = TensorArg(env, info[0], "toBuffer").detach().to(at::kCPU).contiguous();
  size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, nbytes);
  if (nbytes > 0) std::memcpy(ab.Data(), t.data_ptr(), nbytes);
  return ab;
  P3S_CATCH(env)
}

// ---------------------------------------------------------------------------------------------
// Tensor metadata and lifetime.
Napi::Value Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = TensorArg(env, info[0], "shape");
  auto sizes = t.sizes();
  Napi::Array arr = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) arr.Set(i, Napi::Number::New(env, double(sizes[i])));
  return arr;
}

Napi::Value Dtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<int>(TensorArg(env, info[0], "dtype").scalar_type()));
}

Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, TensorArg(env, info[0], "device").device().str());
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsTensor(env, info[0])) {
    throw Napi::TypeError::New(env, "Expected a tensor handle");
  }
  TensorHandle::Unwrap(info[0].As<Napi::Object>())->Release();
  return env.Undefined();
}

Napi::Value IsAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsTensor(env, info[0])) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, TensorHandle::Unwrap(info[0].As<Napi::Object>())->alive());
}

Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_live_tensors.load()));
}

// ---------------------------------------------------------------------------------------------
// Autograd.
Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, TensorArg(env, info[0], "requiresGrad").requires_grad());
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  at::Tensor t = TensorArg(env, info[0], "setRequiresGrad");
  t.set_requires_grad(info[1].As<Napi::Boolean>().Value());
  return env.Undefined();
  P3S_CATCH(env)
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, TensorArg(env, info[0], "isLeaf").is_leaf());
}

Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& fn = TensorArg(env, info[0], "gradFn").grad_fn();
  if (!fn) return env.Null();
  return Napi::String::New(env, fn->name());
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const at::Tensor& g = TensorArg(env, info[0], "grad").grad();
  if (!g.defined()) return env.Null();
  return TensorHandle::Wrap(env, g);
  P3S_CATCH(env)
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const at::Tensor& t = TensorArg(env, info[0], "setGrad");
  if (info[1].IsNull() || info[1].IsUndefined()) {
    t.mutable_grad() = at::Tensor();
  } else {
    const at::Tensor& g = TensorArg(env, info[1], "setGrad gradient");
    TORCH_CHECK(g.sizes() == t.sizes(), "Gradient shape ", g.sizes(), " does not match tensor shape ",
                t.sizes());
    t.mutable_grad() = g;
  }
  return env.Undefined();
  P3S_CATCH(env)
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const at::Tensor& t = TensorArg(env, info[0], "backward");
  at::Tensor grad;
  if (!info[1].IsNull() && !info[1].IsUndefined()) grad = TensorArg(env, info[1], "backward gradient");
  bool retain = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  bool create = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (!grad.defined()) {
    TORCH_CHECK(t.requires_grad(), "backward() on a tensor that does not require grad");
    TORCH_CHECK(t.numel() == 1, "backward() without a gradient needs a scalar, got shape ", t.sizes());
  }
  t.backward(grad, retain, create);
  return env.Undefined();
  P3S_CATCH(env)
}

// Runs fn() with grad mode set (enabled/disabled) or in inference mode; restores on exit/throw.
Napi::Value WithGradMode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  std::string mode = info[0].As<Napi::String>().Utf8Value();
  Napi::Function fn = info[1].As<Napi::Function>();
  if (mode == "inference") {
    c10::InferenceMode guard;
    return fn.Call({});
  }
  at::AutoGradMode guard(mode == "enabled");
  return fn.Call({});
  P3S_CATCH(env)
}

Napi::Value GradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// ---------------------------------------------------------------------------------------------
// Devices, threads, seeds.
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  return Napi::Boolean::New(env, at::detail::getCUDAHooks().hasCUDA());
  P3S_CATCH(env)
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  if (!at::detail::getCUDAHooks().hasCUDA()) return Napi::Number::New(env, 0);
  return Napi::Number::New(env, at::detail::getCUDAHooks().getNumGPUs());
  P3S_CATCH(env)
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  TORCH_CHECK(at::detail::getCUDAHooks().hasCUDA(), "CUDA is not available in this libtorch");
  int64_t index = info[0].IsNumber() ? IntArg(env, info[0], "device index")
                                     : at::detail::getCUDAHooks().current_device();
  at::detail::getCUDAHooks().deviceSynchronize(index);
  return env.Undefined();
  P3S_CATCH(env)
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  uint64_t seed = static_cast<uint64_t>(IntArg(env, info[0], "seed"));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  const auto& hooks = at::detail::getCUDAHooks();
  if (hooks.hasCUDA()) {
    for (int i = 0; i < hooks.getNumGPUs(); i++) {
      auto gen = hooks.getDefaultCUDAGenerator(i);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
  }
  return env.Undefined();
  P3S_CATCH(env)
}

Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  uint64_t seed = static_cast<uint64_t>(IntArg(env, info[0], "seed"));
  std::string device = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
  c10::Device dev(device);
  at::Generator gen;
  if (dev.is_cpu()) {
    gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  } else {
    const auto& hooks = at::detail::getCUDAHooks();
    TORCH_CHECK(dev.is_cuda() && hooks.hasCUDA(), "Cannot create a generator on ", device);
    gen = hooks.getDefaultCUDAGenerator(dev.has_index() ? dev.index() : 0).clone();
    gen.set_current_seed(seed);
  }
  return GeneratorHandle::Wrap(env, gen);
  P3S_CATCH(env)
}

Napi::Value GeneratorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  if (!IsGenerator(env, info[0])) {
    throw Napi::TypeError::New(env, "Expected a Generator");
  }
  at::Generator& gen = GeneratorHandle::Unwrap(info[0].As<Napi::Object>())->gen();
  std::lock_guard<std::mutex> lock(gen.mutex());
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    gen.set_state(TensorArg(env, info[1], "generator state"));
    return env.Undefined();
  }
  return TensorHandle::Wrap(env, gen.get_state());
  P3S_CATCH(env)
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  at::set_num_threads(static_cast<int>(IntArg(env, info[0], "threads")));
  return env.Undefined();
  P3S_CATCH(env)
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  std::ostringstream ss;
  ss << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH;
  return Napi::String::New(info.Env(), ss.str());
}


// ---------------------------------------------------------------------------------------------
// Attention a block of query rows at a time, for libtorch without a fused kernel (1.13).
// The plain softmax(q kᵀ·scale + mask) v keeps the (B·heads, Nq, Nk) probabilities for backward:
// 0.5 GiB per 64×64 self-attention layer of SD 1.5 in fp32. This Function keeps only q, k, v
// (and the mask) and recomputes each block's probabilities in backward, so at most one block of
// scores exists at a time. The softmax is the same kernel as the plain path's, so outputs agree
// to rounding. Gradients: with p = softmax(s), dv = pᵀ do, ds = p ∘ (do vᵀ − rowsum(p ∘ do vᵀ)),
// dq = ds k·scale, dk = dsᵀ q·scale. The mask is a constant (no gradient).
class ChunkedAttention : public torch::autograd::Function<ChunkedAttention> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                            const at::Tensor& k, const at::Tensor& v,
                            const c10::optional<at::Tensor>& maskArg, double scale, int64_t chunk) {
    const at::Tensor mask = maskArg.value_or(at::Tensor());
    TORCH_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, "attention needs (..., L, d) inputs");
    TORCH_CHECK(chunk > 0, "attention chunk must be positive, got ", chunk);
    TORCH_CHECK(!mask.defined() || at::isFloatingType(mask.scalar_type()),
                "chunked attention takes an additive floating-point mask");
    const at::Tensor kt = k.transpose(-2, -1);
    std::vector<at::Tensor> outs;
    for (int64_t s = 0; s < q.size(-2); s += chunk) {
      const int64_t n = std::min(chunk, q.size(-2) - s);
      outs.push_back(at::matmul(Probs(q.narrow(-2, s, n), kt, mask, s, n, q.size(-2), scale), v));
    }
    ctx->save_for_backward({q, k, v, mask});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["chunk"] = chunk;
    return outs.size() == 1 ? outs[0] : at::cat(outs, -2);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &mask = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor& dout = grads[0];
    const at::Tensor kt = k.transpose(-2, -1), vt = v.transpose(-2, -1);
    std::vector<at::Tensor> dqs;
    at::Tensor dk, dv;  // summed over blocks, in float32 for half-precision inputs
    for (int64_t s = 0; s < q.size(-2); s += chunk) {
      const int64_t n = std::min(chunk, q.size(-2) - s);
      const at::Tensor qc = q.narrow(-2, s, n), doc = dout.narrow(-2, s, n);
      const at::Tensor p = Probs(qc, kt, mask, s, n, q.size(-2), scale);
      Accumulate(dv, at::matmul(p.transpose(-2, -1), doc));
      at::Tensor ds = at::matmul(doc, vt);  // dp
      ds.sub_((ds * p).sum(-1, true)).mul_(p);
      dqs.push_back(at::matmul(ds, k).mul_(scale));
      Accumulate(dk, at::matmul(ds.transpose(-2, -1), qc).mul_(scale));
    }
    at::Tensor dq = dqs.size() == 1 ? dqs[0] : at::cat(dqs, -2);
    // Inputs whose batch dims were broadcast get their gradient summed back to their shape.
    return {at::sum_to(dq, q.sizes()), at::sum_to(dk, k.sizes()).to(k.scalar_type()),
            at::sum_to(dv, v.sizes()).to(v.scalar_type()), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }

 private:
  // softmax(q_c kᵀ·scale + mask_c) for query rows [s, s + n); a mask with one row broadcasts.
  static at::Tensor Probs(const at::Tensor& qc, const at::Tensor& kt, const at::Tensor& mask,
                          int64_t s, int64_t n, int64_t nq, double scale) {
    at::Tensor scores = at::matmul(qc, kt).mul_(scale);
    if (mask.defined()) {
      const bool perRow = mask.dim() >= 2 && mask.size(-2) == nq && nq != 1;
      scores = scores.add_(perRow ? mask.narrow(-2, s, n) : mask);
    }
    return at::softmax(scores, -1);
  }
  static void Accumulate(at::Tensor& acc, const at::Tensor& x) {
    if (!acc.defined()) {
      const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
      acc = half ? x.to(at::kFloat) : x;
    } else {
      acc.add_(x);
    }
  }
};

// chunkedAttention(q, k, v, mask | null, scale, chunkRows): (..., Nq, d_v), differentiable.
Napi::Value ChunkedAttentionOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  P3S_TRY
  const at::Tensor& q = TensorArg(env, info[0], "attention q");
  const at::Tensor& k = TensorArg(env, info[1], "attention k");
  const at::Tensor& v = TensorArg(env, info[2], "attention v");
  c10::optional<at::Tensor> mask;
  if (!info[3].IsNull() && !info[3].IsUndefined()) mask = TensorArg(env, info[3], "attention mask");
  const double scale = info[4].As<Napi::Number>().DoubleValue();
  const int64_t chunk = IntArg(env, info[5], "attention chunk");
  return TensorHandle::Wrap(env, ChunkedAttention::apply(q, k, v, mask, scale, chunk));
  P3S_CATCH(env)
}

// ---------------------------------------------------------------------------------------------
// CPU buffers. Large buffers come from mmap (M_MMAP_THRESHOLD below), so freeing one returns it
// to the OS and the heap cannot grow by fragments; but a fresh mapping costs a page fault per
// 4 KiB on first touch, and a training step asks for the same large sizes every time. So freed
// large buffers wait here, by size, for the next request that fits, up to a byte limit.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kMinCached = size_t{1} << 20;

  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(size_t n) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < kMinCached) {
      void* small = c10::alloc_cpu(n);  // freed directly: no lock on the hot path
      return {small, small, &c10::free_cpu, cpu};
    }
    auto* self = const_cast<CachingCpuAllocator*>(this);
    void* p = self->Take(n);
    if (p == nullptr) {
      p = c10::alloc_cpu(n);
      self->Track(p, n);
    }
    return {p, p, &Release, cpu};
  }
  // Release frees blocks it does not track, so it serves raw_allocate of any size.
  c10::DeleterFnPtr raw_deleter() const override { return &Release; }

  struct Stats {
    size_t cachedBytes, limit, inUseBytes, peakInUseBytes;
    uint64_t hits, misses;
  };
  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_bytes_, limit_, in_use_, peak_in_use_, hits_, misses_};
  }
  // The peak restarts from what is in use now (torch.cuda.reset_peak_memory_stats).
  void ResetPeak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_in_use_ = in_use_;
  }
  static CachingCpuAllocator* instance;

 private:
  // A cached block serves a request up to 1/8 smaller than itself.
  void* Take(size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(n);
    if (it == free_.end() || it->first - n > n / 8) {
      misses_++;
      return nullptr;
    }
    const size_t size = it->first;
    void* p = it->second;
    cached_bytes_ -= size;
    free_.erase(it);
    hits_++;
    Use(size);
    return p;
  }
  void Track(void* p, size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[p] = n;
    Use(n);
  }
  // Bytes of large blocks held by tensors: what a GPU allocator would count as allocated.
  void Use(size_t n) {
    in_use_ += n;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
  }
  void Give(void* p) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = sizes_.find(p);
      if (it != sizes_.end()) {  // else not ours to cache (a small block from raw_allocate)
        in_use_ -= it->second;
        if (cached_bytes_ + it->second <= limit_) {
          cached_bytes_ += it->second;
          free_.emplace(it->second, p);
          return;
        }
        sizes_.erase(it);
      }
    }
    c10::free_cpu(p);
  }
  static void Release(void* p) { instance->Give(p); }

  const size_t limit_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;  // every large block we made, cached or in use
  std::multimap<size_t, void*> free_;
  size_t cached_bytes_ = 0, in_use_ = 0, peak_in_use_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};
CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

// P3S_CPU_CACHE_MB: the most freed bytes kept for reuse (default 2048; 0 turns the cache off,
// and the allocator still counts the bytes in use).
void InstallCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("P3S_CPU_CACHE_MB");
    const long long mb = env != nullptr ? std::atoll(env) : 2048;
    const size_t limit = mb > 0 ? static_cast<size_t>(mb) << 20 : 0;
    CachingCpuAllocator::instance = new CachingCpuAllocator(limit);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
}

Napi::Value CpuCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto* a = CachingCpuAllocator::instance;
  const auto s = a->stats();
  out.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  out.Set("limitBytes", static_cast<double>(s.limit));
  out.Set("inUseBytes", static_cast<double>(s.inUseBytes));
  out.Set("peakInUseBytes", static_cast<double>(s.peakInUseBytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  return out;
}

void ResetPeakInUse(const Napi::CallbackInfo&) { CachingCpuAllocator::instance->ResetPeak(); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // glibc's dynamic mmap threshold can leave freed multi-MB tensor buffers unreused (the heap
  // grows by every op's output on some runs). A fixed threshold maps every large buffer on its
  // own, so it leaves no fragments; the cache above spares the page faults of mapping it anew.
  // P3S_MALLOC_DEFAULTS=1 keeps glibc's own behaviour.
  const char* keep = std::getenv("P3S_MALLOC_DEFAULTS");
  if (keep == nullptr || std::string(keep) != "1") mallopt(M_MMAP_THRESHOLD, 1 << 20);
  InstallCpuAllocator();
  env.SetInstanceData(new AddonData());
  exports.Set("TensorHandle", TensorHandle::Init(env));
  exports.Set("GeneratorHandle", GeneratorHandle::Init(env));
  exports.Set("findOp", Napi::Function::New(env, FindOp));
  exports.Set("callOp", Napi::Function::New(env, CallOp));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("allOpNames", Napi::Function::New(env, AllOpNames));
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("fromFile", Napi::Function::New(env, FromFile));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("dtype", Napi::Function::New(env, Dtype));
  exports.Set("device", Napi::Function::New(env, DeviceOf));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("isAlive", Napi::Function::New(env, IsAlive));
  exports.Set("liveTensors", Napi::Function::New(env, LiveTensors));
  exports.Set("cpuCache", Napi::Function::New(env, CpuCache));
  exports.Set("resetPeakInUse", Napi::Function::New(env, ResetPeakInUse));
  exports.Set("requiresGrad", Napi::Function::New(env, RequiresGrad));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf));
  exports.Set("gradFnName", Napi::Function::New(env, GradFnName));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("withGradMode", Napi::Function::New(env, WithGradMode));
  exports.Set("gradEnabled", Napi::Function::New(env, GradEnabled));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("cudaSynchronize", Napi::Function::New(env, CudaSynchronize));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("newGenerator", Napi::Function::New(env, NewGenerator));
  exports.Set("generatorState", Napi::Function::New(env, GeneratorState));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("libtorchVersion", Napi::Function::New(env, Version));
  exports.Set("chunkedAttention", Napi::Function::New(env, ChunkedAttentionOp));
  return exports;
}

}  // namespace

NODE_API_MODULE(p3s_native, Init)
