"""Serving live streams through Triton Inference Server (optional extra: ``pip install -e ".[serving]"``).

* :mod:`siamtrt.serving.repository` writes a model repository from a model directory: the template and search
  branches as models (``python`` backend running ONNX Runtime, ``onnxruntime`` → ``onnxruntime_onnx``,
  ``tensorrt`` → ``tensorrt_plan``) with ``config.pbtxt`` generated from the directory's metadata, plus the stateful
  ``tracker`` model (Python backend, sequence batcher): one sequence per target, START with the first frame and box,
  then one request per frame returning the box and score.
* :mod:`siamtrt.serving.stateful` is the tracker model's logic: one :class:`siamtrt.runtime.Tracker` per sequence
  over a backend that calls the branch models (so geometry and post-processing are the runtime's, unchanged).
* :mod:`siamtrt.serving.client` tracks a video through a server with ``tritonclient`` (HTTP or gRPC).
* :mod:`siamtrt.serving.server` starts a local ``tritonserver`` (the NGC container's or the one inside the
  ``nvidia-pytriton`` wheel) for tests and benchmarks.
* :mod:`siamtrt.serving.bench` measures N streams through the server vs in-process; :mod:`siamtrt.serving.soak`
  runs sequences started, ended and abandoned for a long time and watches the server's memory.

Nothing here is imported by :mod:`siamtrt.runtime`.
"""
