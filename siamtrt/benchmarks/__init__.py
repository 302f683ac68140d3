"""Benchmarks: speed (``fps``) and OPE tracking accuracy (``accuracy``) of every backend/precision against the
PyTorch reference (``torch_backend``), with the metrics, sequence readers, synthetic sequences and result files they
share. Importing this package loads nothing heavy; torch is imported only by the reference backend.
"""
