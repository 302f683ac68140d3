/*
 * Device code of the siamtrt depthwise cross-correlation (see dwxcorr_kernel.h for the definition).
 * Header-only templates, included by dwxcorr_kernel.cu (nvcc: CMake, the CI compile check, the fatbin the Python
 * plugin loads) and compiled by NVRTC from the same text when no prebuilt fatbin exists.
 *
 * Layout of the work: one block row per (n, c) plane (blockIdx.y, continued in blockIdx.z); the h*w kernel of that
 * plane is staged in shared memory once, then each thread produces output pixels of the plane (grid-stride over
 * blockIdx.x). The search feature is read straight from global memory: neighbouring threads read neighbouring pixels
 * (coalesced) and the plane is small (SiamRPN++: 29x29 or 31x31), so it stays in L1/L2.
 */
#ifndef SIAMTRT_DWXCORR_KERNEL_CUH
#define SIAMTRT_DWXCORR_KERNEL_CUH

#include <cuda_fp16.h>

namespace siamtrt
{

__device__ __forceinline__ float toFloat(float v)
{
    return v;
}
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}
template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}

/* Dynamic shared memory needed by one block: the h*w kernel in float. */
__host__ __device__ inline unsigned int dwxcorrSharedBytes(int h, int w)
{
    return static_cast<unsigned int>(h) * static_cast<unsigned int>(w) * sizeof(float);
}

template <typename T>
__device__ __forceinline__ void dwxcorrPlane(T const* __restrict__ x, T const* __restrict__ k, T* __restrict__ y,
    int N, int C, int H, int W, int h, int w)
{
    extern __shared__ float sk[];
    // gridDim.y is limited to 65535 planes, so planes continue in gridDim.z (block-uniform early exit).
    long long const plane = static_cast<long long>(blockIdx.z) * gridDim.y + blockIdx.y;
    if (plane >= static_cast<long long>(N) * C)
    {
        return;
    }
    int const Ho = H - h + 1;
    int const Wo = W - w + 1;
    T const* xp = x + plane * H * W;
    T const* kp = k + plane * h * w;
    T* yp = y + plane * Ho * Wo;

    for (int t = threadIdx.x; t < h * w; t += blockDim.x)
    {
        sk[t] = toFloat(kp[t]);
    }
    __syncthreads();

    int const outCount = Ho * Wo;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < outCount; o += gridDim.x * blockDim.x)
    {
        int const i = o / Wo;
        int const j = o - i * Wo;
        float acc = 0.F;
        T const* xr = xp + i * W + j;
        for (int u = 0; u < h; ++u)
        {
            float const* kr = sk + u * w;
            T const* xu = xr + u * W;
            for (int v = 0; v < w; ++v)
            {
                acc += toFloat(xu[v]) * kr[v];
            }
        }
        yp[o] = fromFloat<T>(acc);
    }
}

} // namespace siamtrt

/* Unmangled entry points: gridDim = (ceil(Ho*Wo / blockDim.x) capped at 64, min(N*C, 65535), ceil(N*C / 65535)),
 * blockDim.x = SIAMTRT_DWXCORR_BLOCK,
 * dynamic shared memory = dwxcorrSharedBytes(h, w). Defined in every translation unit that includes this header with
 * SIAMTRT_DWXCORR_DEFINE_KERNELS (exactly one: dwxcorr_kernel.cu, or the NVRTC program). */
#ifdef SIAMTRT_DWXCORR_DEFINE_KERNELS
extern "C" __global__ void siamtrt_dwxcorr_f32(float const* x, float const* k, float* y, int N, int C, int H, int W,
    int h, int w)
{
    siamtrt::dwxcorrPlane<float>(x, k, y, N, C, H, W, h, w);
}
extern "C" __global__ void siamtrt_dwxcorr_f16(__half const* x, __half const* k, __half* y, int N, int C, int H, int W,
    int h, int w)
{
    siamtrt::dwxcorrPlane<__half>(x, k, y, N, C, H, W, h, w);
}
#endif

#endif /* SIAMTRT_DWXCORR_KERNEL_CUH */
