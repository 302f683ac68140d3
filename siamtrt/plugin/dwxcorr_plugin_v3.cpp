/*
 * IPluginV3 wrapper of the siamtrt depthwise cross-correlation kernel (see dwxcorr_plugin_v3.h).
 * No attributes, no serialized fields, no workspace, one tactic: the glue only maps descriptors to the kernel.
 */
#include "dwxcorr_plugin_v3.h"

using namespace nvinfer1;

namespace siamtrt
{

IPluginCapability* DwXCorrPluginV3::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    if (type == PluginCapabilityType::kBUILD)
    {
        return static_cast<IPluginV3OneBuild*>(this);
    }
    if (type == PluginCapabilityType::kRUNTIME)
    {
        return static_cast<IPluginV3OneRuntime*>(this);
    }
    if (type == PluginCapabilityType::kCORE)
    {
        return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* DwXCorrPluginV3::clone() noexcept
{
    try
    {
        auto* plugin = new DwXCorrPluginV3();
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (...)
    {
        return nullptr;
    }
}

char const* DwXCorrPluginV3::getPluginName() const noexcept
{
    return kDWXCORR_PLUGIN_NAME;
}

char const* DwXCorrPluginV3::getPluginVersion() const noexcept
{
    return kDWXCORR_PLUGIN_VERSION;
}

char const* DwXCorrPluginV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

void DwXCorrPluginV3::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

int32_t DwXCorrPluginV3::configurePlugin(DynamicPluginTensorDesc const* /*in*/, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return (nbInputs == 2 && nbOutputs == 1) ? 0 : -1;
}

int32_t DwXCorrPluginV3::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != 1 || nbInputs != 2)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t DwXCorrPluginV3::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4)
    {
        return -1;
    }
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = inputs[0].d[1];
    outputs[0].d[2] = dwxcorrOutExtent(exprBuilder, *inputs[0].d[2], *inputs[1].d[2]);
    outputs[0].d[3] = dwxcorrOutExtent(exprBuilder, *inputs[0].d[3], *inputs[1].d[3]);
    return 0;
}

bool DwXCorrPluginV3::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc descs[3];
    for (int32_t i = 0; i <= pos; ++i)
    {
        descs[i] = inOut[i].desc;
    }
    return dwxcorrSupports(pos, descs);
}

int32_t DwXCorrPluginV3::getNbOutputs() const noexcept
{
    return 1;
}

size_t DwXCorrPluginV3::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t DwXCorrPluginV3::setTactic(int32_t /*tactic*/) noexcept
{
    return 0;
}

int32_t DwXCorrPluginV3::onShapeChange(
    PluginTensorDesc const* /*in*/, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return (nbInputs == 2 && nbOutputs == 1) ? 0 : -1;
}

int32_t DwXCorrPluginV3::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return dwxcorrEnqueue(inputDesc, inputs, outputs, stream);
}

IPluginV3* DwXCorrPluginV3::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* DwXCorrPluginV3::getFieldsToSerialize() noexcept
{
    mFieldsToSerialize.nbFields = 0;
    mFieldsToSerialize.fields = nullptr;
    return &mFieldsToSerialize;
}

// ------------------------------------------------------------------------------------------------------ creator

DwXCorrPluginV3Creator::DwXCorrPluginV3Creator()
{
    mFC.nbFields = 0;
    mFC.fields = nullptr;
}

char const* DwXCorrPluginV3Creator::getPluginName() const noexcept
{
    return kDWXCORR_PLUGIN_NAME;
}

char const* DwXCorrPluginV3Creator::getPluginVersion() const noexcept
{
    return kDWXCORR_PLUGIN_VERSION;
}

PluginFieldCollection const* DwXCorrPluginV3Creator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* DwXCorrPluginV3Creator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* /*fc*/, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        auto* plugin = new DwXCorrPluginV3();
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (...)
    {
        return nullptr;
    }
}

char const* DwXCorrPluginV3Creator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

// Static registration (see dwxcorr_plugin_v2.cpp). REGISTER_TENSORRT_PLUGIN accepts IPluginCreatorV3One since 10.0.
REGISTER_TENSORRT_PLUGIN(DwXCorrPluginV3Creator);

} // namespace siamtrt
