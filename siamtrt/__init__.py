"""siamtrt: deploy Siamese RPN trackers (pysot SiamRPN++, DaSiamRPN) on ONNX Runtime and TensorRT."""

__version__ = "0.1.0"
