// Prints compiler or linker flags for the libtorch the addon builds against:
// $LIBTORCH (a folder with include/ and lib/, as PyTorch's libtorch zip or a pip torch/ folder)
// or else Debian's libtorch-dev in the system paths. CUDA libraries are linked when present,
// so the same addon runs on the GPU wherever that libtorch has CUDA.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const mode = process.argv[2];
const root = process.env.LIBTORCH;
let includeDirs;
let libDir;
if (root) {
  includeDirs = [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')];
  libDir = path.join(root, 'lib');
  if (!fs.existsSync(path.join(root, 'include/ATen/ATen.h'))) {
    process.stderr.write(`LIBTORCH=${root}: expected include/ATen/ATen.h there\n`);
    process.exit(1);
  }
} else {
  includeDirs = ['/usr/include', '/usr/include/torch/csrc/api/include'];
  libDir = fs.existsSync('/usr/lib/x86_64-linux-gnu/libtorch_cpu.so') ? '/usr/lib/x86_64-linux-gnu'
    : fs.existsSync('/usr/lib/aarch64-linux-gnu/libtorch_cpu.so') ? '/usr/lib/aarch64-linux-gnu' : '/usr/lib';
  if (!fs.existsSync('/usr/include/ATen/ATen.h')) {
    process.stderr.write('libtorch not found: install Debian\'s libtorch-dev or set LIBTORCH to a libtorch folder\n');
    process.exit(1);
  }
}

// c10d's reducer.hpp includes a distributed-autograd header that Debian's libtorch-dev leaves out;
// native/src/compat_dist_autograd_context.h declares the two names it needs. It is put where the
// include expects it, in the build folder (made again by every configure), only when missing.
const DIST_AUTOGRAD_HEADER = 'torch/csrc/distributed/autograd/context/context.h';
if (mode === 'include' && !fs.existsSync(path.join(includeDirs[0], DIST_AUTOGRAD_HEADER))) {
  const compat = path.join(__dirname, '../native/build/compat');
  fs.mkdirSync(path.join(compat, path.dirname(DIST_AUTOGRAD_HEADER)), { recursive: true });
  fs.copyFileSync(path.join(__dirname, '../native/src/compat_dist_autograd_context.h'), path.join(compat, DIST_AUTOGRAD_HEADER));
  includeDirs.push(compat);
}

// c10d's backends compiled into the addon: Gloo always (CPU); NCCL only where a CUDA libtorch ships
// ProcessGroupNCCL and nccl.h is found (in the libtorch, or NCCL_INCLUDE_DIR, e.g. pip's nvidia/nccl/include).
const C10D = 'torch/csrc/distributed/c10d';
const ncclInclude = [process.env.NCCL_INCLUDE_DIR, ...includeDirs].filter(Boolean).find((dir) => fs.existsSync(path.join(dir, 'nccl.h')));
const hasNccl = fs.existsSync(path.join(includeDirs[0], C10D, 'ProcessGroupNCCL.hpp')) && ncclInclude !== undefined &&
  (fs.existsSync(path.join(libDir, 'libtorch_cuda.so')));
if (hasNccl && !includeDirs.includes(ncclInclude)) includeDirs.push(ncclInclude);

// oneDNN post-op fusions (native/src/onednn.cc) call the libdnnl that libtorch itself links, through
// ideep's headers: only for a libtorch in the system paths that links the system libdnnl (Debian's),
// with libdnnl-dev and libideep-dev installed. A LIBTORCH folder bundles its own oneDNN: not used.
const hasOneDnn = !root && fs.existsSync('/usr/include/ideep.hpp') && fs.existsSync('/usr/include/dnnl.hpp') &&
  fs.existsSync(path.join(libDir, 'libdnnl.so'));

// at::parallel_for is a header template: it splits work across threads only when compiled with OpenMP
// (Debian's libtorch is built with AT_PARALLEL_OPENMP and links libgomp; without -fopenmp the pragma is
// ignored and it runs on one thread). Only where its users (onednn.cc, winograd.cc, grouped.cc) are built.
const openmp = hasOneDnn ? ['-fopenmp'] : [];

if (mode === 'defines') {
  process.stdout.write(['USE_C10D_GLOO', ...(hasNccl ? ['USE_C10D_NCCL'] : []), ...(hasOneDnn ? ['STCNET_ONEDNN'] : [])].join(' '));
} else if (mode === 'include') {
  // /usr/include is already on the system path; repeating it with -I breaks #include_next.
  process.stdout.write(includeDirs.filter((dir) => dir !== '/usr/include').join(' '));
} else if (mode === 'libs') {
  const libs = ['torch', 'torch_cpu', 'c10'];
  for (const optional of ['torch_cuda', 'c10_cuda']) {
    if (fs.existsSync(path.join(libDir, `lib${optional}.so`))) libs.push(optional);
  }
  if (hasOneDnn) libs.push('dnnl');
  // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: loading it
  // is what registers the CUDA kernels with the dispatcher.
  const flags = [`-L${libDir}`, `-Wl,-rpath,${libDir}`, '-Wl,--no-as-needed', ...libs.map((l) => `-l${l}`), '-Wl,--as-needed', ...openmp];
  process.stdout.write(flags.join(' '));
} else if (mode === 'cflags') {
  process.stdout.write(openmp.join(' '));
} else if (mode === 'libdir') {
  process.stdout.write(libDir);
} else {
  process.stderr.write('usage: libtorch-config.cjs include|libs|libdir|defines|cflags\n');
  process.exit(1);
}
