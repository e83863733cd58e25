{
  "targets": [
    {
      "target_name": "stcnet_jpeg",
      "sources": ["jpeg.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "libraries": ["-lturbojpeg"],
      "cflags_cc": ["-O3", "-std=c++17"],
      "cflags": ["-O3"]
    }
  ]
}
