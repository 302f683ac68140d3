/*
 * The one compiled source of the depthwise cross-correlation: the kernels (from dwxcorr_kernel.cuh) and the host
 * launchers declared in dwxcorr_kernel.h. Linked into the C++ TensorRT plugins; compiled to a fatbin for the Python
 * plugin (siamtrt/plugin/build.py); compiled by CI for every architecture nvcc supports.
 */
#define SIAMTRT_DWXCORR_DEFINE_KERNELS
#include "dwxcorr_kernel.cuh"

#ifndef __CUDACC_RTC__
#include "dwxcorr_kernel.h"

namespace
{

template <typename T>
cudaError_t launchDwxcorr(T const* x, T const* k, T* y, int N, int C, int H, int W, int h, int w, cudaStream_t stream,
    void (*kernel)(T const*, T const*, T*, int, int, int, int, int, int))
{
    if (N < 0 || C < 0 || h <= 0 || w <= 0 || H < h || W < w)
    {
        return cudaErrorInvalidValue;
    }
    long long const planes = static_cast<long long>(N) * C;
    if (planes == 0)
    {
        return cudaSuccess;
    }
    if (planes > 65535LL * 65535LL)
    {
        return cudaErrorInvalidValue;
    }
    int const outCount = (H - h + 1) * (W - w + 1);
    int const block = SIAMTRT_DWXCORR_BLOCK;
    int gx = (outCount + block - 1) / block;
    gx = gx > 64 ? 64 : gx;
    long long const gy = planes < 65535LL ? planes : 65535LL;
    long long const gz = (planes + gy - 1) / gy;
    dim3 grid(static_cast<unsigned int>(gx), static_cast<unsigned int>(gy), static_cast<unsigned int>(gz));
    kernel<<<grid, block, siamtrt::dwxcorrSharedBytes(h, w), stream>>>(x, k, y, N, C, H, W, h, w);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t siamtrt_dwxcorr_launch_f32(float const* x, float const* k, float* y, int N, int C, int H, int W,
    int h, int w, cudaStream_t stream)
{
    return launchDwxcorr<float>(x, k, y, N, C, H, W, h, w, stream, siamtrt_dwxcorr_f32);
}

extern "C" cudaError_t siamtrt_dwxcorr_launch_f16(__half const* x, __half const* k, __half* y, int N, int C, int H,
    int W, int h, int w, cudaStream_t stream)
{
    return launchDwxcorr<__half>(x, k, y, N, C, H, W, h, w, stream, siamtrt_dwxcorr_f16);
}
#endif /* __CUDACC_RTC__ */
