#pragma once
// Per-element math is written once and compiled for both the CPU and CUDA kernels.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define MASKX_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MASKX_HOST_DEVICE inline
#endif
