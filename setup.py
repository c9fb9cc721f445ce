"""Builds maskx_kernels._C: C++ CPU kernels always, CUDA kernels when a GPU is present
or FORCE_CUDA=1 (never with MASKX_NO_CUDA=1).

Environment:
  FORCE_CUDA=1            compile the CUDA sources even without a visible GPU
  MASKX_NO_CUDA=1         never compile CUDA sources
  MASKX_CPU_CAPABILITY    "avx2" or "default"; the default is what the build machine
                          supports (like -march=native builds, the extension targets
                          the CPU it is built on)
  MASKX_DEBUG=1           -O0 -g build
"""
import glob
import os
import platform

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0") == "1"


def _use_cuda():
    if _flag("MASKX_NO_CUDA"):
        return False
    if _flag("FORCE_CUDA"):
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME")
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def _cpu_capability_flags():
    """Vectorised kernels use at::vec; compile them for AVX2 the way ATen compiles its
    own AVX2 kernels (same defines, so at::vec lands in its AVX2 namespace)."""
    wanted = os.environ.get("MASKX_CPU_CAPABILITY")
    if wanted is None:
        supported = platform.machine() in ("x86_64", "AMD64") and torch.backends.cpu.get_cpu_capability() in (
            "AVX2",
            "AVX512",
        )
        wanted = "avx2" if supported else "default"
    if wanted == "avx2":
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    if wanted == "default":
        return []
    raise RuntimeError(f"MASKX_CPU_CAPABILITY must be 'avx2' or 'default', got {wanted!r}")


def _cuda_library_headers():
    """Include folders of the CUDA math libraries that torch's wheels install beside it
    (nvidia/cu<version>/include): torch's CUDA headers include cusparse.h and cublas headers,
    which a bare CUDA toolkit may lack. Searched after the toolkit's own folders."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__)))
    return sorted(glob.glob(os.path.join(site, "nvidia", "cu[0-9]*", "include")))


def _nvcc_host_compiler():
    """nvcc compiles host code with the C++ compiler of the .cpp sources, so that one
    toolchain (and one set of C++ library headers) builds the whole extension. torch
    passes -ccbin $CC itself; with only CXX set, nvcc would otherwise take the gcc on PATH."""
    if os.environ.get("CC") or not os.environ.get("CXX"):
        return []
    return ["-ccbin", os.environ["CXX"]]


def _torch_libstdcxx():
    """Links the C++ standard library that torch runs with (the libstdc++ this process has
    loaded), ahead of the compiler driver's own -lstdc++. A toolchain whose library path
    holds only a static libstdc++.a would otherwise copy parts of the library into the
    extension; that private copy's number formatting looks up the locale that torch's
    shared copy set up, with facet ids of its own, and the first error message that
    prints a number crashes. Named first, the shared library resolves every reference and
    the static archive contributes nothing."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libstdc++.so" in line}
    except OSError:
        return []
    return sorted(paths)[:1]


def _extension():
    debug = _flag("MASKX_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # csrc/ops/cuda/ holds the CUDA kernels: .cu files and .cpp files that call CUDA
    # libraries through ATen. They are built only into a CUDA extension.
    cpp = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    cuda_dir = os.path.join("csrc", "ops", "cuda") + os.sep
    sources = [path for path in cpp if not path.startswith(cuda_dir)]
    cxx = opt + ["-fopenmp", "-Wno-unknown-pragmas"] + _cpu_capability_flags()
    kwargs = dict(
        name="maskx_kernels._C",
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"] + _torch_libstdcxx(),
        py_limited_api=True,
    )
    if _use_cuda():
        sources += [path for path in cpp if path.startswith(cuda_dir)]
        sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
        after = [flag for path in _cuda_library_headers() for flag in ("-isystem", path)]
        kwargs["extra_compile_args"]["cxx"] += after
        kwargs["extra_compile_args"]["nvcc"] = opt + ["--expt-relaxed-constexpr", "-lineinfo"] + after + _nvcc_host_compiler()
        kwargs["define_macros"] = [("MASKX_WITH_CUDA", None)]
        return CUDAExtension(sources=sources, **kwargs)
    return CppExtension(sources=sources, **kwargs)


setup(
    packages=find_packages(include=["maskx*", "maskx_kernels*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
