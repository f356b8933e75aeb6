// knet/host_device.h: KNET_HOST_DEVICE marks per-element math that both the CPU kernels (plain
// C++) and the CUDA kernels (nvcc, __host__ __device__) compile from the same header.
#pragma once

#if defined(__CUDACC__)
#define KNET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define KNET_HOST_DEVICE inline
#endif
