/*
 * DepthwiseXCorr as an IPluginV2DynamicExt: the plugin interface of TensorRT 8.x (JetPack 4.6 / TensorRT 8.2 on
 * Jetson Nano and TX2, JetPack 5 / TensorRT 8.5). Deprecated but still present in TensorRT 10 and 11; prefer the
 * IPluginV3 build (dwxcorr_plugin_v3.h) there. Modelled on the plugins of NVIDIA/TensorRT (plugin/*, 8.x branches).
 */
#ifndef SIAMTRT_DWXCORR_PLUGIN_V2_H
#define SIAMTRT_DWXCORR_PLUGIN_V2_H

#include "dwxcorr_plugin_common.h"

#include <string>

namespace siamtrt
{

class DwXCorrPluginV2 : public nvinfer1::IPluginV2DynamicExt
{
public:
    DwXCorrPluginV2() = default;
    DwXCorrPluginV2(void const* /*data*/, size_t /*length*/) {}
    ~DwXCorrPluginV2() override = default;

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(
        int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(
        int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;

    // IPluginV2
    char const* getPluginType() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::string mNamespace;
};

class DwXCorrPluginV2Creator : public nvinfer1::IPluginCreator
{
public:
    DwXCorrPluginV2Creator();
    ~DwXCorrPluginV2Creator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(
        char const* name, void const* serialData, size_t serialLength) noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    nvinfer1::PluginFieldCollection mFC{};
    std::string mNamespace;
};

} // namespace siamtrt

#endif // SIAMTRT_DWXCORR_PLUGIN_V2_H
