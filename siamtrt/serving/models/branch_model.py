"""Triton Python-backend model: one branch (template or search) of a siamtrt model directory on ONNX Runtime.

Written into the repository as ``<model>/1/model.py`` beside ``model.onnx`` by siamtrt.serving.repository, for
servers without the ONNX Runtime backend. Requests that arrive together (the dynamic batcher merges the streams)
are concatenated along the batch axis and run as one ONNX Runtime call, then split back per request.
Needs only numpy and onnxruntime in the server's Python.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # pb_io.py is copied beside this file
from pb_io import input_array, pb_tensor, quiet_dlpack_capsules  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(params.get("threads", "1"))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in cfg["input"]]
        self.outputs = [o["name"] for o in cfg["output"]]
        self.batched = int(cfg.get("max_batch_size", 0)) > 0
        quiet_dlpack_capsules()

    def execute(self, requests):
        feeds = [{n: input_array(pb_utils.get_input_tensor_by_name(r, n)) for n in self.inputs} for r in requests]
        results = [None] * len(requests)
        groups = {}
        for i, feed in enumerate(feeds):
            key = tuple((n, feed[n].shape[1:] if self.batched else feed[n].shape) for n in self.inputs)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            if len(idx) == 1 or not self.batched:
                for i in idx:
                    results[i] = self.session.run(self.outputs, feeds[i])
                continue
            feed = {n: np.concatenate([feeds[i][n] for i in idx]) for n in self.inputs}
            outs = self.session.run(self.outputs, feed)
            start = 0
            for i in idx:
                n = feeds[i][self.inputs[0]].shape[0]
                results[i] = [o[start:start + n] for o in outs]
                start += n
        return [pb_utils.InferenceResponse([pb_tensor(n, a) for n, a in zip(self.outputs, res)])
                for res in results]
