{
  "targets": [
    {
      "target_name": "stcnet_torch",
      "sources": ["src/addon.cc", "src/convert.cc", "src/tensor_io.cc", "src/distributed.cc", "src/onednn.cc", "src/winograd.cc", "src/winograd_autograd.cc", "src/grouped.cc", "src/grouped_autograd.cc", "src/stem_autograd.cc", "src/max_pool.cc", "src/profiler.cc", "src/sgd.cc", "src/mean_pools.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node ../scripts/libtorch-config.cjs include)"
      ],
      "libraries": ["<!@(node ../scripts/libtorch-config.cjs libs)"],
      "defines": ["<!@(node ../scripts/libtorch-config.cjs defines)", "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "<!@(node ../scripts/libtorch-config.cjs cflags)"]
    }
  ]
}
