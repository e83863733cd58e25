// stcnet_jpeg: a small Node-API addon over libturbojpeg for the frame cache.
// Context-aware (one TurboJPEG handle pair per environment), so it loads in worker threads.
//
// An environment being torn down (process.exit, worker.terminate) makes every Node-API call that may
// run JavaScript fail with napi_pending_exception, and node-addon-api without C++ exceptions turns a
// failed napi_throw into a fatal error (SIGABRT). So: nothing here throws through node-addon-api on
// a path a teardown can reach; errors are thrown with the C API and a failed throw is ignored (no
// JavaScript runs after it anyway), and node-addon-api's own internal throws are told to do the same.
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#include <napi.h>
#include <turbojpeg.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace {

struct Handles {
  tjhandle compressor = nullptr;
  tjhandle decompressor = nullptr;
  ~Handles() {
    if (compressor) tjDestroy(compressor);
    if (decompressor) tjDestroy(decompressor);
  }
};

Handles* GetHandles(Napi::Env env) { return env.GetInstanceData<Handles>(); }

bool GetBytes(const Napi::Value& value, uint8_t** data, size_t* length) {
  if (!value.IsTypedArray()) return false;
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (array.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  *data = bytes.Data();
  *length = bytes.ByteLength();
  return true;
}

// Throws a JavaScript Error, unless one is pending already or the environment is going away: there,
// napi_throw fails, and the failure is ignored on purpose (the caller returns and no script runs).
Napi::Value Fail(Napi::Env env, const std::string& message) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return Napi::Value();
  napi_value text;
  napi_value error;
  if (napi_create_string_utf8(env, message.data(), message.size(), &text) != napi_ok) return Napi::Value();
  if (napi_create_error(env, nullptr, text, &error) != napi_ok) return Napi::Value();
  napi_throw(env, error);
  return Napi::Value();
}

// A boolean argument read without coercion (napi_coerce_to_bool may run script, so it fails in a
// teardown); anything but `true` is false.
bool Flag(const Napi::Value& value) {
  bool result = false;
  return napi_get_value_bool(value.Env(), value, &result) == napi_ok && result;
}

// Reads a number argument; false (and no exception) when it is not a number.
bool Int(const Napi::Value& value, int32_t* out) {
  return napi_get_value_int32(value.Env(), value, out) == napi_ok;
}
bool Size(const Napi::Value& value, size_t* out) {
  int64_t v = 0;
  if (napi_get_value_int64(value.Env(), value, &v) != napi_ok || v < 0) return false;
  *out = static_cast<size_t>(v);
  return true;
}
bool Real(const Napi::Value& value, double* out) {
  return napi_get_value_double(value.Env(), value, out) == napi_ok;
}

// encode(rgb: Uint8Array, width, height, quality, subsampling: 444|420) -> Buffer
Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* rgb;
  size_t length;
  if (info.Length() < 5 || !GetBytes(info[0], &rgb, &length)) {
    return Fail(env, "jpeg.encode(rgb, width, height, quality, subsampling): rgb must be a Uint8Array");
  }
  int32_t width, height, quality, subsampling;
  if (!Int(info[1], &width) || !Int(info[2], &height) || !Int(info[3], &quality) || !Int(info[4], &subsampling)) {
    return Fail(env, "jpeg.encode(rgb, width, height, quality, subsampling): width, height, quality and subsampling must be numbers");
  }
  if (width <= 0 || height <= 0 || static_cast<size_t>(width) * height * 3 != length) {
    return Fail(env, "jpeg.encode: rgb has " + std::to_string(length) + " bytes, expected " +
                         std::to_string(width) + "x" + std::to_string(height) + "x3");
  }
  Handles* handles = GetHandles(env);
  if (!handles) return Fail(env, "jpeg: the addon did not initialise");
  if (!handles->compressor) handles->compressor = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long outSize = 0;
  int samp = subsampling == 444 ? TJSAMP_444 : (subsampling == 422 ? TJSAMP_422 : TJSAMP_420);
  if (tjCompress2(handles->compressor, rgb, width, 0, height, TJPF_RGB, &out, &outSize, samp, quality,
                  TJFLAG_FASTDCT) != 0) {
    std::string message = std::string("jpeg.encode: ") + tjGetErrorStr2(handles->compressor);
    if (out) tjFree(out);
    return Fail(env, message);
  }
  napi_value result = nullptr;
  napi_status status = napi_create_buffer_copy(env, outSize, out, nullptr, &result);
  tjFree(out);
  if (status != napi_ok) return Fail(env, "jpeg.encode: cannot allocate the output buffer");
  return Napi::Value(env, result);
}

// header(jpeg: Uint8Array) -> [width, height]
Napi::Value Header(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* jpeg;
  size_t length;
  if (info.Length() < 1 || !GetBytes(info[0], &jpeg, &length)) return Fail(env, "jpeg.header(jpeg): expected a Uint8Array");
  Handles* handles = GetHandles(env);
  if (!handles) return Fail(env, "jpeg: the addon did not initialise");
  if (!handles->decompressor) handles->decompressor = tjInitDecompress();
  int width, height, subsamp, colorspace;
  if (tjDecompressHeader3(handles->decompressor, jpeg, length, &width, &height, &subsamp, &colorspace) != 0) {
    return Fail(env, std::string("jpeg.header: ") + tjGetErrorStr2(handles->decompressor));
  }
  napi_value result, w, h;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok || napi_create_int32(env, width, &w) != napi_ok ||
      napi_create_int32(env, height, &h) != napi_ok || napi_set_element(env, result, 0, w) != napi_ok ||
      napi_set_element(env, result, 1, h) != napi_ok) {
    return Fail(env, "jpeg.header: cannot make the result");
  }
  return Napi::Value(env, result);
}

// decodeInto(jpeg: Uint8Array, out: Uint8Array, outOffset, width, height, fast: boolean) -> undefined
// Decodes an RGB image of exactly width x height into out at outOffset (bytes).
Napi::Value DecodeInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* jpeg;
  size_t length;
  uint8_t* out;
  size_t outLength;
  if (info.Length() < 6 || !GetBytes(info[0], &jpeg, &length) || !GetBytes(info[1], &out, &outLength)) {
    return Fail(env, "jpeg.decodeInto(jpeg, out, outOffset, width, height, fast): expected Uint8Arrays");
  }
  size_t offset;
  int32_t width, height;
  if (!Size(info[2], &offset) || !Int(info[3], &width) || !Int(info[4], &height)) {
    return Fail(env, "jpeg.decodeInto: outOffset, width and height must be numbers (outOffset >= 0)");
  }
  bool fast = Flag(info[5]);
  Handles* handles = GetHandles(env);
  if (!handles) return Fail(env, "jpeg: the addon did not initialise");
  if (!handles->decompressor) handles->decompressor = tjInitDecompress();
  int w, h, subsamp, colorspace;
  if (tjDecompressHeader3(handles->decompressor, jpeg, length, &w, &h, &subsamp, &colorspace) != 0) {
    return Fail(env, std::string("jpeg.decodeInto: ") + tjGetErrorStr2(handles->decompressor));
  }
  if (w != width || h != height) {
    return Fail(env, "jpeg.decodeInto: image is " + std::to_string(w) + "x" + std::to_string(h) + ", expected " +
                         std::to_string(width) + "x" + std::to_string(height));
  }
  if (offset + static_cast<size_t>(w) * h * 3 > outLength) return Fail(env, "jpeg.decodeInto: output buffer too small");
  int flags = fast ? (TJFLAG_FASTDCT | TJFLAG_FASTUPSAMPLE) : 0;
  if (tjDecompress2(handles->decompressor, jpeg, length, out + offset, w, 0, h, TJPF_RGB, flags) != 0) {
    return Fail(env, std::string("jpeg.decodeInto: ") + tjGetErrorStr2(handles->decompressor));
  }
  return env.Undefined();
}

// cropResize(src, srcWidth, srcHeight, x, y, w, h, flip, dst, dstOffset, dstWidth, dstHeight, planeStride[, lut])
// Bilinear resampling of the box (x, y, w, h) of an RGB (HWC) frame into three planes of dst
// (channel c at dstOffset + c * planeStride, in elements), optionally mirrored horizontally. Pixel
// centres are aligned as in PIL/OpenCV (half-pixel offsets); weights are 8-bit fixed point, so the
// result is bit-exact with the TypeScript reference (cropResizeJs). dst is a Uint8Array, or a
// Float32Array together with lut (768 floats: channel c, value v at c * 256 + v) for normalisation.
template <typename Out, typename Store>
void Resample(const uint8_t* src, int sw, int sh, double bx, double by, double bw, double bh, bool flip, Out* dst,
              int dw, int dh, size_t plane, Store store) {
  std::unique_ptr<int[]> x0(new int[dw]);
  std::unique_ptr<int[]> wx(new int[dw]);
  double sx = bw / dw;
  double sy = bh / dh;
  for (int i = 0; i < dw; i++) {
    double fx = bx + (i + 0.5) * sx - 0.5;
    if (fx < 0) fx = 0;
    if (fx > sw - 1) fx = sw - 1;
    int ix = static_cast<int>(fx);
    if (ix > sw - 2) ix = sw > 1 ? sw - 2 : 0;
    double frac = fx - ix;
    int k = flip ? dw - 1 - i : i;
    x0[k] = ix * 3;
    wx[k] = sw > 1 ? static_cast<int>(frac * 256 + 0.5) : 0;
  }
  const int step = sw > 1 ? 3 : 0;
  Out* r = dst;
  Out* g = r + plane;
  Out* b = g + plane;
  for (int j = 0; j < dh; j++) {
    double fy = by + (j + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    if (fy > sh - 1) fy = sh - 1;
    int iy = static_cast<int>(fy);
    if (iy > sh - 2) iy = sh > 1 ? sh - 2 : 0;
    int wy = sh > 1 ? static_cast<int>((fy - iy) * 256 + 0.5) : 0;
    int nwy = 256 - wy;
    const uint8_t* row0 = src + static_cast<size_t>(iy) * sw * 3;
    const uint8_t* row1 = sh > 1 ? row0 + static_cast<size_t>(sw) * 3 : row0;
    size_t o = static_cast<size_t>(j) * dw;
    for (int i = 0; i < dw; i++, o++) {
      const uint8_t* p0 = row0 + x0[i];
      const uint8_t* p1 = row1 + x0[i];
      int a = wx[i];
      int na = 256 - a;
      int t0 = p0[0] * na + p0[step] * a, u0 = p1[0] * na + p1[step] * a;
      int t1 = p0[1] * na + p0[step + 1] * a, u1 = p1[1] * na + p1[step + 1] * a;
      int t2 = p0[2] * na + p0[step + 2] * a, u2 = p1[2] * na + p1[step + 2] * a;
      store(r + o, 0, (t0 * nwy + u0 * wy + (1 << 15)) >> 16);
      store(g + o, 1, (t1 * nwy + u1 * wy + (1 << 15)) >> 16);
      store(b + o, 2, (t2 * nwy + u2 * wy + (1 << 15)) >> 16);
    }
  }
}

Napi::Value CropResize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* src;
  size_t srcLength;
  if (info.Length() < 13 || !GetBytes(info[0], &src, &srcLength) || !info[8].IsTypedArray()) {
    return Fail(env, "jpeg.cropResize: expected a Uint8Array src and a typed array dst");
  }
  int32_t sw, sh, dw, dh;
  double bx, by, bw, bh;
  size_t dstOffset, plane;
  if (!Int(info[1], &sw) || !Int(info[2], &sh) || !Real(info[3], &bx) || !Real(info[4], &by) || !Real(info[5], &bw) ||
      !Real(info[6], &bh) || !Size(info[9], &dstOffset) || !Int(info[10], &dw) || !Int(info[11], &dh) || !Size(info[12], &plane)) {
    return Fail(env, "jpeg.cropResize: sizes, box and offsets must be numbers (offsets >= 0)");
  }
  bool flip = Flag(info[7]);
  if (sw < 1 || sh < 1 || dw < 1 || dh < 1) return Fail(env, "jpeg.cropResize: sizes must be positive");
  if (static_cast<size_t>(sw) * sh * 3 > srcLength) return Fail(env, "jpeg.cropResize: src too small");
  Napi::TypedArray dstArray = info[8].As<Napi::TypedArray>();
  size_t need = dstOffset + 2 * plane + static_cast<size_t>(dw) * dh;
  if (dstArray.TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array dst = info[8].As<Napi::Uint8Array>();
    if (need > dst.ElementLength()) return Fail(env, "jpeg.cropResize: dst too small");
    Resample(src, sw, sh, bx, by, bw, bh, flip, dst.Data() + dstOffset, dw, dh, plane,
             [](uint8_t* p, int, int v) { *p = static_cast<uint8_t>(v); });
  } else if (dstArray.TypedArrayType() == napi_float32_array) {
    Napi::Float32Array dst = info[8].As<Napi::Float32Array>();
    if (need > dst.ElementLength()) return Fail(env, "jpeg.cropResize: dst too small");
    if (info.Length() < 14 || !info[13].IsTypedArray() || info[13].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        info[13].As<Napi::Float32Array>().ElementLength() < 768) {
      return Fail(env, "jpeg.cropResize: a Float32Array dst needs a 768-entry Float32Array lut");
    }
    const float* lut = info[13].As<Napi::Float32Array>().Data();
    Resample(src, sw, sh, bx, by, bw, bh, flip, dst.Data() + dstOffset, dw, dh, plane,
             [lut](float* p, int c, int v) { *p = lut[c * 256 + v]; });
  } else {
    return Fail(env, "jpeg.cropResize: dst must be a Uint8Array or Float32Array");
  }
  return env.Undefined();
}

// The C entry point of a function: no node-addon-api wrapper that could throw around it.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
napi_value Entry(napi_env env, napi_callback_info info) {
  Napi::CallbackInfo args(env, info);
  return F(args);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // A worker can load the addon while the process exits: then these calls fail, and the module is
  // returned incomplete to a script that will never run, instead of aborting the process.
  if (napi_set_instance_data(env, new Handles(), [](napi_env, void* data, void*) { delete static_cast<Handles*>(data); },
                             nullptr) != napi_ok) {
    return exports;
  }
  const std::pair<const char*, napi_callback> functions[] = {
      {"encode", Entry<Encode>},
      {"header", Entry<Header>},
      {"decodeInto", Entry<DecodeInto>},
      {"cropResize", Entry<CropResize>},
  };
  for (const auto& [name, callback] : functions) {
    napi_value fn;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn) != napi_ok ||
        napi_set_named_property(env, exports, name, fn) != napi_ok) {
      return exports;
    }
  }
  napi_value version;
  if (napi_create_string_utf8(env, "stcnet_jpeg 1", NAPI_AUTO_LENGTH, &version) == napi_ok) {
    napi_set_named_property(env, exports, "version", version);
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(stcnet_jpeg, Init)
