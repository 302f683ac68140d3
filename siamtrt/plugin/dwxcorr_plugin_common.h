/*
 * Shared facts of the siamtrt DepthwiseXCorr TensorRT plugins (IPluginV2DynamicExt and IPluginV3 wrappers).
 *
 * The ONNX node (domain "siamtrt", op "DepthwiseXCorr", attributes plugin_version "1", plugin_namespace "") is
 * mapped by TensorRT's ONNX parser to the creator registered under name "DepthwiseXCorr", version "1", namespace "".
 * Inputs: 0 = search feature [N, C, H, W], 1 = kernel [N, C, h, w]; output: [N, C, H - h + 1, W - w + 1].
 * Both inputs and the output share one type (float or half) and the linear (NCHW) format.
 */
#ifndef SIAMTRT_DWXCORR_PLUGIN_COMMON_H
#define SIAMTRT_DWXCORR_PLUGIN_COMMON_H

#include "NvInfer.h"
#include "dwxcorr_kernel.h"

#include <cstdint>

namespace siamtrt
{

constexpr char const* kDWXCORR_PLUGIN_NAME = "DepthwiseXCorr";
constexpr char const* kDWXCORR_PLUGIN_VERSION = "1";

//! Output spatial extent H - h + 1 (same formula for both axes).
inline nvinfer1::IDimensionExpr const* dwxcorrOutExtent(
    nvinfer1::IExprBuilder& exprBuilder, nvinfer1::IDimensionExpr const& in, nvinfer1::IDimensionExpr const& k)
{
    auto const* diff = exprBuilder.operation(nvinfer1::DimensionOperation::kSUB, in, k);
    return exprBuilder.operation(nvinfer1::DimensionOperation::kSUM, *diff, *exprBuilder.constant(1));
}

//! The one type/format rule: linear layout, float or half, every tensor of the type of input 0.
inline bool dwxcorrSupports(int32_t pos, nvinfer1::PluginTensorDesc const* inOut)
{
    nvinfer1::PluginTensorDesc const& desc = inOut[pos];
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF;
    }
    return desc.type == inOut[0].type;
}

//! Launch the shared kernel for the descriptors TensorRT hands to enqueue(); returns 0 on success.
inline int32_t dwxcorrEnqueue(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* const* outputs, cudaStream_t stream)
{
    nvinfer1::Dims const& x = inputDesc[0].dims;
    nvinfer1::Dims const& k = inputDesc[1].dims;
    if (x.nbDims != 4 || k.nbDims != 4 || x.d[0] != k.d[0] || x.d[1] != k.d[1])
    {
        return 1;
    }
    int const N = static_cast<int>(x.d[0]);
    int const C = static_cast<int>(x.d[1]);
    int const H = static_cast<int>(x.d[2]);
    int const W = static_cast<int>(x.d[3]);
    int const h = static_cast<int>(k.d[2]);
    int const w = static_cast<int>(k.d[3]);
    cudaError_t status = cudaErrorInvalidValue;
    if (inputDesc[0].type == nvinfer1::DataType::kFLOAT)
    {
        status = siamtrt_dwxcorr_launch_f32(static_cast<float const*>(inputs[0]), static_cast<float const*>(inputs[1]),
            static_cast<float*>(outputs[0]), N, C, H, W, h, w, stream);
    }
    else if (inputDesc[0].type == nvinfer1::DataType::kHALF)
    {
        status = siamtrt_dwxcorr_launch_f16(static_cast<__half const*>(inputs[0]),
            static_cast<__half const*>(inputs[1]), static_cast<__half*>(outputs[0]), N, C, H, W, h, w, stream);
    }
    return status == cudaSuccess ? 0 : 1;
}

} // namespace siamtrt

#endif // SIAMTRT_DWXCORR_PLUGIN_COMMON_H
