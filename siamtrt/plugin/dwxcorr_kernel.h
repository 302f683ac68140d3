/*
 * siamtrt depthwise cross-correlation: the C interface shared by every wrapper.
 *
 *   y[n, c, i, j] = sum_{u < h, v < w} x[n, c, i + u, j + v] * k[n, c, u, v]
 *   x: [N, C, H, W] search feature, k: [N, C, h, w] per-target kernel, y: [N, C, H - h + 1, W - w + 1]
 *
 * This is pysot's xcorr_depthwise (F.conv2d(x.view(1, N*C, H, W), k.view(N*C, 1, h, w), groups=N*C)) without the
 * batch folding. Tensors are dense NCHW (TensorRT's kLINEAR format). Accumulation is in float32 for both types.
 * The launchers return cudaSuccess, cudaErrorInvalidValue (bad sizes) or the launch error.
 */
#ifndef SIAMTRT_DWXCORR_KERNEL_H
#define SIAMTRT_DWXCORR_KERNEL_H

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Names of the __global__ entry points (extern "C", unmangled) for module loaders (cuModuleGetFunction). */
#define SIAMTRT_DWXCORR_KERNEL_F32 "siamtrt_dwxcorr_f32"
#define SIAMTRT_DWXCORR_KERNEL_F16 "siamtrt_dwxcorr_f16"
#define SIAMTRT_DWXCORR_BLOCK 128

cudaError_t siamtrt_dwxcorr_launch_f32(const float* x, const float* k, float* y, int N, int C, int H, int W, int h,
                                       int w, cudaStream_t stream);
cudaError_t siamtrt_dwxcorr_launch_f16(const __half* x, const __half* k, __half* y, int N, int C, int H, int W,
                                       int h, int w, cudaStream_t stream);

#ifdef __cplusplus
} /* extern "C" */

/* C++ convenience: siamtrt_dwxcorr_launch(x, k, y, ...) for float and __half. */
inline cudaError_t siamtrt_dwxcorr_launch(const float* x, const float* k, float* y, int N, int C, int H, int W, int h,
                                          int w, cudaStream_t stream)
{
    return siamtrt_dwxcorr_launch_f32(x, k, y, N, C, H, W, h, w, stream);
}
inline cudaError_t siamtrt_dwxcorr_launch(const __half* x, const __half* k, __half* y, int N, int C, int H, int W,
                                          int h, int w, cudaStream_t stream)
{
    return siamtrt_dwxcorr_launch_f16(x, k, y, N, C, H, W, h, w, stream);
}
#endif

#endif /* SIAMTRT_DWXCORR_KERNEL_H */
