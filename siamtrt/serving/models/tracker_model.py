"""Triton Python-backend model: the stateful siamtrt tracker (one sequence per tracked target).

Written into the repository as ``<prefix>_tracker/1/model.py`` beside ``siamtrt_model.json`` by
siamtrt.serving.repository. Per request: ``frame`` (uint8 [1, H, W, 3] BGR), ``init_box`` ([1, 4] x, y, w, h, on the
START request), controls START / END / CORRID from the sequence batcher; outputs ``bbox`` [1, 4] and ``score``
[1, 1] (float64).
Every sequence's work runs in its own thread: each is a siamtrt.runtime.Tracker whose branches are BLS requests to
the template / search models, so the search model's dynamic batcher merges the streams of one batch into one call.
Needs siamtrt (and its runtime dependencies) in the server's Python.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from siamtrt.serving.models.pb_io import input_array, pb_tensor, quiet_dlpack_capsules
from siamtrt.serving.stateful import RELEASE_LOG, SequenceTrackers


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "siamtrt_model.json")) as f:
            meta = json.load(f)
        self.models = meta["models"]
        self.outputs = {b: meta["io"][b]["outputs"] for b in ("template", "search")}
        idle = int(cfg.get("sequence_batching", {}).get("max_sequence_idle_microseconds", 60000000)) / 1e6
        self.sequences = SequenceTrackers.from_repository_meta(meta, self._bls, here, idle_seconds=idle,
                                                               on_release=self._log_release)
        self.pool = ThreadPoolExecutor(max(1, int(cfg.get("max_batch_size", 1))))
        quiet_dlpack_capsules()

    def _log_release(self, corrids):
        """One server-log line per release of abandoned sequences (the soak benchmark counts them)."""
        pb_utils.Logger.log_info(f"{RELEASE_LOG} {len(corrids)} (sequences {', '.join(map(str, corrids[:8]))}"
                                 f"{' ...' if len(corrids) > 8 else ''}; {len(self.sequences)} live)")

    def _bls(self, branch, feed):
        names = self.outputs[branch]
        request = pb_utils.InferenceRequest(model_name=self.models[branch], requested_output_names=names,
                                            inputs=[pb_tensor(k, v) for k, v in feed.items()])
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{self.models[branch]}: {response.error().message()}")
        # Copies: the response's buffers are released with it, the tracker keeps the template kernels.
        return {n: np.array(input_array(pb_utils.get_output_tensor_by_name(response, n))) for n in names}

    def execute(self, requests):
        jobs = []
        for r in requests:
            def get(name):
                t = pb_utils.get_input_tensor_by_name(r, name)
                return None if t is None else input_array(t)

            corrid = int(get("CORRID").reshape(-1)[0])
            start = bool(get("START").reshape(-1)[0])
            end = bool(get("END").reshape(-1)[0])
            frame = get("frame")
            frame = frame[0] if frame.ndim == 4 else frame
            box = get("init_box")
            box = None if box is None else box.reshape(-1)[:4].astype(np.float64)
            jobs.append(self.pool.submit(self.sequences.handle, corrid, start, end, frame, box))
        responses = []
        for job in jobs:
            try:
                bbox, score = job.result()
                responses.append(pb_utils.InferenceResponse([
                    pb_tensor("bbox", np.asarray(bbox, np.float64).reshape(1, 4)),
                    pb_tensor("score", np.asarray([[score]], np.float64))]))
            except Exception as e:  # one stream's error answers that request; the others go on
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses

    def finalize(self):
        self.pool.shutdown(wait=False)
