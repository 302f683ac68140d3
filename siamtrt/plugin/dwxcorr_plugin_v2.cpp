/*
 * IPluginV2DynamicExt wrapper of the siamtrt depthwise cross-correlation kernel (see dwxcorr_plugin_v2.h).
 * The plugin has no attributes and no serialized state: everything it needs is in the tensor descriptors.
 */
#include "dwxcorr_plugin_v2.h"

using namespace nvinfer1;

namespace siamtrt
{

IPluginV2DynamicExt* DwXCorrPluginV2::clone() const noexcept
{
    try
    {
        auto* plugin = new DwXCorrPluginV2();
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (...)
    {
        return nullptr;
    }
}

DimsExprs DwXCorrPluginV2::getOutputDimensions(
    int32_t outputIndex, DimsExprs const* inputs, int32_t nbInputs, IExprBuilder& exprBuilder) noexcept
{
    DimsExprs out{};
    if (outputIndex != 0 || nbInputs != 2 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4)
    {
        return out; // nbDims 0: TensorRT reports the invalid shape
    }
    out.nbDims = 4;
    out.d[0] = inputs[0].d[0];
    out.d[1] = inputs[0].d[1];
    out.d[2] = dwxcorrOutExtent(exprBuilder, *inputs[0].d[2], *inputs[1].d[2]);
    out.d[3] = dwxcorrOutExtent(exprBuilder, *inputs[0].d[3], *inputs[1].d[3]);
    return out;
}

bool DwXCorrPluginV2::supportsFormatCombination(
    int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    return dwxcorrSupports(pos, inOut);
}

void DwXCorrPluginV2::configurePlugin(
    DynamicPluginTensorDesc const* /*in*/, int32_t /*nbInputs*/, DynamicPluginTensorDesc const* /*out*/,
    int32_t /*nbOutputs*/) noexcept
{
}

size_t DwXCorrPluginV2::getWorkspaceSize(PluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    PluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t DwXCorrPluginV2::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return dwxcorrEnqueue(inputDesc, inputs, outputs, stream);
}

DataType DwXCorrPluginV2::getOutputDataType(
    int32_t /*index*/, DataType const* inputTypes, int32_t /*nbInputs*/) const noexcept
{
    return inputTypes[0];
}

char const* DwXCorrPluginV2::getPluginType() const noexcept
{
    return kDWXCORR_PLUGIN_NAME;
}

char const* DwXCorrPluginV2::getPluginVersion() const noexcept
{
    return kDWXCORR_PLUGIN_VERSION;
}

int32_t DwXCorrPluginV2::getNbOutputs() const noexcept
{
    return 1;
}

int32_t DwXCorrPluginV2::initialize() noexcept
{
    return 0;
}

void DwXCorrPluginV2::terminate() noexcept {}

size_t DwXCorrPluginV2::getSerializationSize() const noexcept
{
    return 0;
}

void DwXCorrPluginV2::serialize(void* /*buffer*/) const noexcept {}

void DwXCorrPluginV2::destroy() noexcept
{
    delete this;
}

void DwXCorrPluginV2::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

char const* DwXCorrPluginV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

// ------------------------------------------------------------------------------------------------------ creator

DwXCorrPluginV2Creator::DwXCorrPluginV2Creator()
{
    mFC.nbFields = 0;
    mFC.fields = nullptr;
}

char const* DwXCorrPluginV2Creator::getPluginName() const noexcept
{
    return kDWXCORR_PLUGIN_NAME;
}

char const* DwXCorrPluginV2Creator::getPluginVersion() const noexcept
{
    return kDWXCORR_PLUGIN_VERSION;
}

PluginFieldCollection const* DwXCorrPluginV2Creator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV2* DwXCorrPluginV2Creator::createPlugin(char const* /*name*/, PluginFieldCollection const* /*fc*/) noexcept
{
    try
    {
        auto* plugin = new DwXCorrPluginV2();
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (...)
    {
        return nullptr;
    }
}

IPluginV2* DwXCorrPluginV2Creator::deserializePlugin(
    char const* /*name*/, void const* serialData, size_t serialLength) noexcept
{
    try
    {
        auto* plugin = new DwXCorrPluginV2(serialData, serialLength);
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (...)
    {
        return nullptr;
    }
}

void DwXCorrPluginV2Creator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

char const* DwXCorrPluginV2Creator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

// Static registration: loading the library (ctypes.CDLL, dlopen, trtexec --staticPlugins / --plugins,
// DeepStream custom-lib-path) registers the creator with TensorRT's global plugin registry.
REGISTER_TENSORRT_PLUGIN(DwXCorrPluginV2Creator);

} // namespace siamtrt
