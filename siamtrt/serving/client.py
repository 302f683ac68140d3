"""Track through a Triton server: one sequence per target on the stateful tracker model (HTTP or gRPC).

Command: ``siamtrt client --url 127.0.0.1:8001 --video bag.avi --bbox 316,140,112,115 --out boxes.txt``
(siamtrt/cli/client.py). Library: ``RemoteTracker(url, protocol="grpc")`` with ``init(frame, bbox)`` /
``track(frame) -> (bbox, score)`` mirrors :class:`siamtrt.runtime.Tracker` for one target; :func:`track_video` runs a
whole video (frames decoded as they are sent; ``on_frame`` sees each result as it arrives, e.g. a
:class:`~siamtrt.runtime.boxes.BoxWriter`) and :func:`track_streams` runs several videos (or several copies of one)
concurrently, one thread and sequence each.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import SiamtrtError
from .repository import ServingError

LOG = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http")
END_TIMEOUT = 5.0  # seconds for the best-effort END that releases an unfinished sequence


def _next_sequence_id() -> int:
    """A random 63-bit correlation id (never 0: Triton's "no sequence"): clients in other processes, started in the
    same millisecond, do not collide (a clock-and-counter id did)."""
    return secrets.randbits(63) or 1


def _request_fix(err: str, model: str, protocol: str) -> str:
    """The fix for a failed request, from tritonclient's words: a wrong protocol for the port, an unknown model."""
    other = "http" if protocol == "grpc" else "grpc"
    if "unknown model" in err:
        return (f"this server serves no model {model!r}: a repository written with siamtrt triton --prefix P serves "
                "P_tracker; pass --model P_tracker (the server's log lists its models)")
    if "GOAWAY" in err or "Server not ready" in err:  # a server shutting down, not a protocol mismatch
        return "the server is stopping or restarting: check it runs (siamtrt serve's output and log), then run again"
    if "Deadline Exceeded" in err or "timed out" in err:
        return ("the server did not answer in time: it is overloaded, or all its sequence slots (4 x the --max-batch "
                "the repository was written with) are held by running streams or by streams that vanished without "
                "END (a killed client: freed after the repository's --idle-seconds, 60 by default); retry later, or "
                "write the repository with a larger --max-batch or a shorter --idle-seconds")
    if any(w in err for w in ("Expected HTTP/", "Socket closed", "RST_STREAM", "Trying to connect an http1.x server")):
        return (f"--url may be the server's {other.upper()} port: pass --protocol {other}, or the {protocol} port "
                "(tritonserver's defaults: gRPC 8001, HTTP 8000)")
    return (f"check --url and --protocol ({protocol} here; tritonserver's defaults: gRPC 8001, HTTP 8000) and that "
            "the server serves a repository written by siamtrt triton (siamtrt serve --model-repository DIR)")


def _client_module(protocol: str):
    if protocol not in PROTOCOLS:
        raise ServingError(f"unknown protocol '{protocol}'", evidence=f"valid: {', '.join(PROTOCOLS)}")
    try:
        if protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            import tritonclient.http as mod
    except ImportError as e:
        raise ServingError("tritonclient is not installed", evidence=repr(e),
                           fix='pip install -e ".[serving]"  (tritonclient[http,grpc])') from None
    if protocol == "http":
        _quiet_interrupts_in_gevent()
    return mod


def _quiet_interrupts_in_gevent() -> None:
    """tritonclient.http waits in gevent's hub: a Ctrl-C / SIGTERM (a KeyboardInterrupt from the command's signal
    handler) raised there is printed by the hub as a traceback before it reaches the command, which reports the
    stop itself. Listed in the hub's NOT_ERROR it is not printed, and still raised in the waiting code (it stays a
    SYSTEM_ERROR)."""
    import gevent

    hub = gevent.get_hub()
    if not issubclass(KeyboardInterrupt, hub.NOT_ERROR):
        hub.NOT_ERROR = tuple(hub.NOT_ERROR) + (KeyboardInterrupt,)


class RemoteTracker:
    """One target tracked by the server's stateful tracker model.

    Args:
        url (str): host:port of the server's gRPC (8001) or HTTP (8000) endpoint.
        protocol (str): "grpc" or "http". Defaults to "grpc".
        model (str): tracker model name. Defaults to "siamtrt_tracker".
        sequence_id (int): correlation id. Defaults to a fresh one per init().
        timeout (float): seconds per request. Defaults to 60.
    """

    def __init__(self, url: str, protocol: str = "grpc", model: str = "siamtrt_tracker",
                 sequence_id: Optional[int] = None, timeout: float = 60.0):
        self.mod = _client_module(protocol)
        self.url = url
        self.protocol = protocol
        self.model = model
        self.timeout = timeout
        self.client = (self.mod.InferenceServerClient(url) if protocol == "grpc"
                       else self.mod.InferenceServerClient(url, network_timeout=timeout, connection_timeout=timeout))
        self._fixed_id = sequence_id
        self.sequence_id: Optional[int] = None
        self.ended = False  # the sequence's END was sent
        self.last_latency: Optional[float] = None

    def _infer(self, frame: np.ndarray, box: Optional[np.ndarray], start: bool, end: bool) -> Tuple[np.ndarray, float]:
        frame = np.ascontiguousarray(frame, np.uint8)[None]
        inputs = [self.mod.InferInput("frame", list(frame.shape), "UINT8")]
        inputs[0].set_data_from_numpy(frame)
        if box is not None:
            b = np.asarray(box, np.float64).reshape(1, 4)
            inputs.append(self.mod.InferInput("init_box", [1, 4], "FP64"))
            inputs[1].set_data_from_numpy(b)
        outputs = [self.mod.InferRequestedOutput("bbox"), self.mod.InferRequestedOutput("score")]
        kw = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        t0 = time.perf_counter()
        try:
            res = self.client.infer(self.model, inputs, outputs=outputs, sequence_id=self.sequence_id,
                                    sequence_start=start, sequence_end=end, **kw)
        except Exception as e:  # tritonclient raises InferenceServerException (and socket errors over HTTP)
            raise ServingError(f"{self.model} request failed (sequence {self.sequence_id})", evidence=str(e)[:600],
                               fix=_request_fix(str(e), self.model, self.protocol)) from None
        self.last_latency = time.perf_counter() - t0
        return res.as_numpy("bbox").reshape(4).astype(np.float64), float(res.as_numpy("score").reshape(-1)[0])

    def init(self, frame: np.ndarray, bbox: Sequence[float], last: bool = False) -> None:
        """Start a new sequence on ``frame`` with the target box x, y, w, h (``last``: and end it, a 1-frame video)."""
        self.sequence_id = self._fixed_id if self._fixed_id is not None else _next_sequence_id()
        self.ended = False
        self._infer(frame, np.asarray(bbox, np.float64), start=True, end=last)
        self.ended = last

    def track(self, frame: np.ndarray, last: bool = False) -> Tuple[np.ndarray, float]:
        """Box x, y, w, h and score in ``frame``; ``last`` ends the sequence (the server frees its state)."""
        if self.sequence_id is None:
            raise ServingError("track() called before init()", fix="call init(frame, bbox) first")
        out = self._infer(frame, None, start=False, end=last)
        self.ended = last
        return out

    def end(self, frame: np.ndarray, timeout: float = END_TIMEOUT) -> None:
        """Best effort: END a started sequence that did not end (a failed or interrupted stream) with one more
        request on ``frame``, so the server frees it now rather than after its idle timeout. Its own failure is
        ignored: the caller reports the error that stopped the stream."""
        if self.sequence_id is None or self.ended:
            return
        self.ended = True
        try:
            if self.protocol == "grpc":
                self.timeout = min(self.timeout, timeout)
            else:  # the HTTP client's timeouts are set when it is made
                self.client.close()
                self.client = self.mod.InferenceServerClient(self.url, network_timeout=timeout,
                                                             connection_timeout=timeout)
            self._infer(frame, None, start=False, end=True)
        except Exception as e:  # noqa: BLE001 - never hide the error that stopped the stream
            LOG.debug("END of sequence %s not delivered: %s", self.sequence_id, e)

    def close(self) -> None:
        self.client.close()


@dataclass
class StreamResult:
    """Boxes (frames, 4) and scores (frames,) of one stream; frame 0 is the init box (score 1)."""

    boxes: np.ndarray
    scores: np.ndarray
    seconds: float
    latencies: np.ndarray


def _frames(video: Union[str, Path, Sequence[np.ndarray]], max_frames: Optional[int]) -> List[np.ndarray]:
    if isinstance(video, (str, Path)):
        from ..runtime.video import open_frames

        return list(open_frames(video, max_frames=max_frames))
    return list(video)[:max_frames]


def _with_last(frames: Iterable[np.ndarray]) -> Iterator[Tuple[np.ndarray, bool]]:
    """(frame, is_last) pairs, one frame of look-ahead: the last request must carry the sequence's END flag."""
    it = iter(frames)
    try:
        cur = next(it)
    except StopIteration:
        return
    for nxt in it:
        yield cur, False
        cur = nxt
    yield cur, True


def track_video(url: str, video: Union[str, Path, Iterable[np.ndarray]], bbox: Sequence[float],
                protocol: str = "grpc", model: str = "siamtrt_tracker", max_frames: Optional[int] = None,
                on_frame: Optional[Callable[[int, np.ndarray, float], None]] = None) -> StreamResult:
    """Track one target through a video (path, frame source or list of frames) on the server.

    Frames are read as they are sent (a video is not held in memory); ``on_frame(index, box, score)`` is called
    for every frame as soon as its result arrives (frame 0: the init box, score 1).
    """
    if isinstance(video, (str, Path)):
        from ..runtime.video import open_frames

        video = open_frames(video, max_frames=max_frames)
    elif max_frames is not None:
        video = itertools.islice(video, max_frames)
    rt = RemoteTracker(url, protocol, model)
    boxes: List[np.ndarray] = []
    scores: List[float] = []
    lat: List[float] = []
    frame = None
    try:
        t0 = time.perf_counter()
        for i, (frame, last) in enumerate(_with_last(video)):
            if i == 0:
                rt.init(frame, bbox, last=last)
                b, s = np.asarray(bbox, np.float64), 1.0
            else:
                b, s = rt.track(frame, last=last)
                lat.append(rt.last_latency)
            boxes.append(b)
            scores.append(s)
            if on_frame is not None:
                on_frame(i, b, s)
        if not boxes:
            raise ServingError("the video has no frames", fix="pass a video with at least one frame")
        return StreamResult(np.stack(boxes), np.asarray(scores), time.perf_counter() - t0, np.asarray(lat))
    finally:
        if frame is not None:
            rt.end(frame)  # a failed or interrupted stream: release its sequence now (a no-op after END)
        rt.close()
        if hasattr(video, "close"):
            video.close()


def track_streams(url: str, streams: Sequence[Tuple[Any, Sequence[float]]], protocol: str = "grpc",
                  model: str = "siamtrt_tracker", max_frames: Optional[int] = None) -> List[StreamResult]:
    """Track several (video or frames, bbox) streams concurrently, one thread and one sequence each.

    Raises:
        ServingError: the first stream error (all streams are joined first).
    """
    results: List[Any] = [None] * len(streams)
    loaded = [(_frames(v, max_frames), b) for v, b in streams]
    barrier = threading.Barrier(len(streams))

    def run(i: int) -> None:
        try:
            barrier.wait(60)
            results[i] = track_video(url, loaded[i][0], loaded[i][1], protocol, model)
        except BaseException as e:  # reported below, after every thread has finished
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            if isinstance(r, SiamtrtError):
                raise r
            raise ServingError("a stream failed", evidence=repr(r)[:600])
    return results
