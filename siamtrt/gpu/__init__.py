"""NVIDIA libraries, imported once (CUDA through cuda-python or ctypes, TensorRT or TensorRT-RTX): the leaf that
the plugin, the runtime and the engine builder all import, so none of them imports another for it."""
