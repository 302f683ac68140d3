"""The crop (siamtrt.runtime.crop) against the references' pad-the-whole-frame crop (test_tracker.ref_subwindow):
pixel-identical inside the frame, across its edges and entirely outside it, for both flavours and every model size;
beyond CROP_EXACT_MAX_SIDE (the safety bound) within one grey level at a cost that does not grow with the side;
buffers reused between calls."""

import contextlib
import time
import tracemalloc

import numpy as np
import pytest

from siamtrt.runtime import crop
from siamtrt.runtime.cpu import physical_cores
from siamtrt.runtime.crop import crop_batch, crop_scratch, get_subwindow, input_buffer
from siamtrt.runtime.geometry import CROP_EXACT_MAX_SIDE

from reference_trackers import ref_subwindow


@pytest.fixture(scope="module")
def frame(bag_frames):
    return bag_frames[3]


def _cases(rng, n, lo, hi, frame_wh):
    w, h = frame_wh
    for i in range(n):
        side = int(rng.integers(lo, hi + 1))
        model = int(rng.choice([127, 255, 271, 287, 831]))
        centre = rng.uniform((-side * 0.6, -side * 0.6), (w + side * 0.6, h + side * 0.6))
        yield ("pysot", "dasiamrpn")[i % 2], model, side, centre


@pytest.mark.parametrize("lo,hi", [(1, 127), (128, 700), (701, CROP_EXACT_MAX_SIDE)],
                         ids=["upscale", "ordinary", "large"])
def test_crop_is_pixel_identical_to_the_reference(lo, hi, frame, rng):
    h, w = frame.shape[:2]
    avg = frame.mean(axis=(0, 1))
    kinds = set()
    for flavour, model, side, centre in _cases(rng, 60, lo, hi, (w, h)):
        got = crop_batch(frame, centre[None], model, [side], avg, flavour)
        want = ref_subwindow(frame, centre, model, side, avg, flavour)
        np.testing.assert_array_equal(got, want, err_msg=f"{flavour} model {model} side {side} centre {centre}")
        x0, y0 = centre - (side + 1) / 2
        kinds.add("inside" if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h else
                  "outside" if x0 + side < 0 or y0 + side < 0 or x0 > w or y0 > h else "across")
    assert {"across", "outside"} <= kinds  # the padded cases were exercised


def test_crop_sides_at_the_bound_and_one_above(frame):
    """The last exact side equals the reference; one pixel more takes the bounded path, within one grey level."""
    avg = frame.mean(axis=(0, 1))
    centre = np.array([10.0, 20.0])  # the window reaches far outside the frame
    for side, exact in ((CROP_EXACT_MAX_SIDE, True), (CROP_EXACT_MAX_SIDE + 1, False)):
        got = crop_batch(frame, centre[None], 287, [side], avg)
        want = ref_subwindow(frame, centre, 287, side, avg, "pysot")
        diff = np.abs(got - want)
        if exact:
            assert diff.max() == 0
        else:
            assert diff.max() <= 1 and (diff > 0).mean() < 0.05


@pytest.mark.parametrize("side", [2500, 7310, 20000])
def test_large_crops_stay_within_one_grey_level(side, frame, rng):
    h, w = frame.shape[:2]
    avg = frame.mean(axis=(0, 1))
    for flavour in ("pysot", "dasiamrpn"):
        centre = rng.uniform((0, 0), (w, h))
        got = crop_batch(frame, centre[None], 831, [side], avg, flavour)
        if side <= 7310:  # the reference itself needs 3·side² bytes; 20000 would be 1.2 GB
            want = ref_subwindow(frame, centre, 831, side, avg, flavour)
            assert np.abs(got - want).max() <= 1
        assert got.shape == (1, 3, 831, 831)


def test_crop_cost_does_not_grow_with_the_side(frame):
    """A 7310-pixel global crop (the largest a bounded 480x360 state asks for at 831) and a 10^6-pixel one cost
    about what an ordinary crop costs: no side² canvas (the reference would allocate 160 MB / 3 TB)."""
    avg = frame.mean(axis=(0, 1))
    out = np.empty((1, 3, 831, 831), np.float32)
    centre = np.array([[240.0, 180.0]])

    def cost(side):
        crop_batch(frame, centre, 831, [side], avg, out=out)  # warm the buffers
        tracemalloc.start()
        t0 = time.perf_counter()
        for _ in range(5):
            crop_batch(frame, centre, 831, [side], avg, out=out)
        sec = (time.perf_counter() - t0) / 5
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return sec, peak

    t_small, m_small = cost(1400)  # an ordinary global search of a 60x48 target at 831 (exact, padded)
    for side in (7310, 10 ** 6):
        t_big, m_big = cost(side)
        assert m_big < 1 << 20, f"side {side}: {m_big} bytes allocated per crop"
        assert t_big < 3 * t_small + 0.005, f"side {side}: {t_big * 1e3:.1f} ms vs {t_small * 1e3:.1f} ms"
    assert m_small < 1 << 20  # the canvas is reused, not allocated per call


def test_crop_scratch_is_reused(frame):
    """Larger padded crops later in a run reuse the one canvas (reserved at its ceiling): no free-and-grow churn,
    which the allocator turned into RSS growth over long runs; the patch and planes are reused too."""
    crop._reset_canvases()  # whatever earlier tests left (no crop is in flight)
    avg = frame.mean(axis=(0, 1))
    out = np.empty((2, 3, 287, 287), np.float32)
    crop_batch(frame, np.array([[5.0, 5.0], [200.0, 150.0]]), 287, [600, 300], avg, out=out)
    patch, planes = crop_scratch(287)
    pool = _canvases()
    assert len(pool) == 1 and pool[0].size == 3 * CROP_EXACT_MAX_SIDE ** 2
    crop_batch(frame, np.array([[470.0, 350.0], [100.0, 100.0]]), 287, [CROP_EXACT_MAX_SIDE, 250], avg, out=out)
    again = crop_scratch(287)
    assert again[0] is patch and all(a is b for a, b in zip(again[1], planes))
    assert len(_canvases()) == 1 and _canvases()[0] is pool[0]


def test_scratch_is_not_per_tracker(frame):
    """A server holds one tracker per live sequence: crop scratch in each (a 12.6 MB canvas, patches, the network
    input) rose and fell with the sequences alive (Triton soak, 8 streams, 16,000 frames: +68 MB after warm-up).
    Patches and inputs are one set per thread; canvases come from one pool that holds no more than were in use at
    once (8 threads cropping in turn share one). Crops cut on two threads at once, with large padded windows, equal
    the reference."""
    import threading

    avg = frame.mean(axis=(0, 1))
    h, w = frame.shape[:2]
    cases = [(np.array([[x, y]]), side) for x, y, side in
             [(5.0, 5.0, 1500), (w - 3.0, h / 2, 1900), (w / 2, -10.0, 1200), (20.0, h - 5.0, 2000)] * 3]
    crop._reset_canvases()  # whatever earlier tests left (no crop is in flight)
    crop_batch(frame, cases[0][0], 287, [cases[0][1]], avg)
    assert len(_canvases()) == 1
    for _ in range(8):  # threads one after another: one canvas between them
        t = threading.Thread(target=crop_batch, args=(frame, cases[1][0], 287, [cases[1][1]], avg))
        t.start()
        t.join()
    assert len(_canvases()) == 1
    scratch, got = {}, {}

    def run(k):
        scratch[k] = crop_scratch(287)[0], input_buffer(2, 287, np.float32)
        got[k] = [crop_batch(frame, c, 287, [side], avg, out=input_buffer(1, 287, np.float32)).copy()
                  for c, side in cases[k::2]]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(_canvases()) <= 2
    mine = crop_scratch(287)[0], input_buffer(2, 287, np.float32)
    for a, b in ((scratch[0], scratch[1]), (scratch[0], mine), (scratch[1], mine)):
        assert a[0] is not b[0] and not np.shares_memory(a[1], b[1])
    for k in range(2):
        for (c, side), g in zip(cases[k::2], got[k]):
            np.testing.assert_array_equal(g[0], ref_subwindow(frame, c[0], 287, side, avg, "pysot")[0])


def _canvases():
    """The canvases made so far (idle in the pool)."""
    return [b for b in list(crop._CANVAS_POOL.queue) if b is not None]


def test_padded_crops_wait_for_a_free_slot(frame):
    """At most one canvas per physical core exists: with every slot taken, a padded crop waits, and runs once one
    is given back."""
    import threading

    crop._reset_canvases()
    avg = frame.mean(axis=(0, 1))
    with contextlib.ExitStack() as stack:
        for _ in range(physical_cores()):
            stack.enter_context(crop._canvas())
        worker = threading.Thread(target=crop_batch, args=(frame, np.array([[5.0, 5.0]]), 287, [900], avg))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # waiting for a slot
    worker.join(30)
    assert not worker.is_alive() and len(_canvases()) == physical_cores()


def test_a_forked_child_gets_a_fresh_canvas_pool(frame):
    """A fork while another thread holds a canvas slot would leave the child one slot short for good (none, with one
    core: its first padded crop would wait forever)."""
    import multiprocessing as mp
    import threading

    avg = frame.mean(axis=(0, 1))
    held, release = threading.Event(), threading.Event()

    def hold_every_slot():
        with contextlib.ExitStack() as stack:
            for _ in range(physical_cores()):
                stack.enter_context(crop._canvas())
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_every_slot)
    holder.start()
    try:
        assert held.wait(30)
        ctx = mp.get_context("fork")
        child = ctx.Process(target=crop_batch, args=(frame, np.array([[5.0, 5.0]]), 287, [900], avg))
        child.start()
        child.join(30)
        alive = child.is_alive()
        if alive:
            child.kill()
        assert not alive and child.exitcode == 0
    finally:
        release.set()
        holder.join(30)


def test_input_buffer_grows_to_the_largest_batch_and_keeps_it():
    """One buffer per (size, dtype) per thread, grown to the largest batch asked and then reused (no churn when a
    long-term tracker's targets move between sizes); each batch is a contiguous view of it."""
    four = input_buffer(4, 255, np.float32)
    one = input_buffer(1, 255, np.float32)
    assert one.shape == (1, 3, 255, 255) and one.flags.c_contiguous and np.shares_memory(one, four)
    assert input_buffer(3, 255, np.float32).base is four.base
    assert not np.shares_memory(input_buffer(1, 255, np.float16), four)


def test_thread_scratch_keeps_the_recently_used_sizes():
    """A long-term growth ladder asks for a new size every lost frame: the thread keeps at most MAX_THREAD_BUFFERS
    scratch sets, the least recently used dropped (each size was kept for the life of the process)."""
    keep = input_buffer(2, 255, np.float32)
    for size in range(295, 295 + 8 * 40, 8):
        input_buffer(1, size, np.float32)
        crop_scratch(size)
        assert input_buffer(1, 255, np.float32).base is keep.base   # in use every frame: kept
    assert len(crop._thread_buffers()) <= crop.MAX_THREAD_BUFFERS
    assert crop_scratch(size) is crop_scratch(size)


def test_get_subwindow_writes_into_out(frame):
    avg = frame.mean(axis=(0, 1))
    out = np.empty((127, 127, 3), np.uint8)
    got = get_subwindow(frame, (30.0, 40.0), 127, 200, avg, out=out)
    assert got is out
    np.testing.assert_array_equal(out.transpose(2, 0, 1)[None].astype(np.float32),
                                  ref_subwindow(frame, (30.0, 40.0), 127, 200, avg, "pysot"))
