"""Independent transcriptions of the reference trackers (pysot SiamRPNTracker, DaSiamRPN SiamRPN_track) and of
their subwindow crop, written from the public sources without the runtime's code: what the runtime tests compare
against (shared by test_tracker, test_modes, test_crop, test_result_observer and test_bag_end_to_end)."""

import math

import cv2
import numpy as np
import onnxruntime as ort


def ref_subwindow(im, pos, model_sz, original_sz, avg_chans, flavour):
    """pysot get_subwindow / DaSiamRPN get_subwindow_tracking as written: pad the WHOLE frame, then crop."""
    sz = original_sz
    im_sz = im.shape
    c = (original_sz + 1) / 2
    if flavour == "pysot":
        xmin = math.floor(pos[0] - c + 0.5)
        ymin = math.floor(pos[1] - c + 0.5)
    else:
        xmin = round(pos[0] - c)
        ymin = round(pos[1] - c)
    xmax, ymax = xmin + sz - 1, ymin + sz - 1
    left, top = int(max(0, -xmin)), int(max(0, -ymin))
    right, bottom = int(max(0, xmax - im_sz[1] + 1)), int(max(0, ymax - im_sz[0] + 1))
    xmin, xmax, ymin, ymax = xmin + left, xmax + left, ymin + top, ymax + top
    r, cc, k = im.shape
    if any([top, bottom, left, right]):
        te = np.zeros((r + top + bottom, cc + left + right, k), np.uint8)
        te[top:top + r, left:left + cc, :] = im
        if top:
            te[0:top, left:left + cc, :] = avg_chans
        if bottom:
            te[r + top:, left:left + cc, :] = avg_chans
        if left:
            te[:, 0:left, :] = avg_chans
        if right:
            te[:, cc + left:, :] = avg_chans
        patch = te[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1), :]
    else:
        patch = im[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1), :]
    if model_sz != original_sz:
        patch = cv2.resize(patch, (model_sz, model_sz))
    return patch.transpose(2, 0, 1)[None].astype(np.float32)


class RefTracker:
    """Straight transcription of pysot SiamRPNTracker / DaSiamRPN SiamRPN_init+track (batch 1, loops)."""

    def __init__(self, model_dir, meta):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.t = ort.InferenceSession(str(model_dir / "template.onnx"), so, providers=["CPUExecutionProvider"])
        self.s = ort.InferenceSession(str(model_dir / "search.onnx"), so, providers=["CPUExecutionProvider"])
        self.tr = meta["track"]
        self.an = meta["anchor"]
        self.names = meta["template_outputs"]

    def init(self, img, bbox):
        x, y, w, h = bbox
        f = self.tr["flavour"]
        self.center = [x + (w - 1) / 2, y + (h - 1) / 2] if f == "pysot" else [x + w / 2, y + h / 2]
        self.size = [w, h]
        self.avg = np.mean(img, axis=(0, 1))
        ca = self.tr["context_amount"]
        s_z = round(math.sqrt((w + ca * (w + h)) * (h + ca * (w + h))))
        self.inst = self.tr["instance_size"]
        if self.tr["adaptive_instance_size"] and w * h / float(img.shape[0] * img.shape[1]) < 0.004:
            self.inst = self.tr["adaptive_instance_size"]
        z = ref_subwindow(img, self.center, 127, s_z, self.avg, f)
        self.kernels = dict(zip(self.names, self.t.run(self.names, {"template": z})))

    def track(self, img):
        from test_postprocess import reference_step  # the per-anchor loop transcription

        f = self.tr["flavour"]
        w, h = self.size
        ca = self.tr["context_amount"]
        if f == "pysot":
            s_z = math.sqrt((w + ca * (w + h)) * (h + ca * (w + h)))
            s_x = s_z * (self.inst / 127)
        else:
            s_z = math.sqrt((h + ca * (w + h)) * (w + ca * (w + h)))
            s_x = s_z + 2 * ((self.inst - 127) / 2) / (127 / s_z)
        x = ref_subwindow(img, self.center, self.inst, round(s_x), self.avg, f)
        cls, loc = self.s.run(["cls", "loc"], dict(self.kernels, search=x))
        cx, cy, nw, nh, score, _ = reference_step(cls[0], loc[0], self.center, self.size,
                                                  (img.shape[1], img.shape[0]), self.tr["penalty_k"],
                                                  self.tr["window_influence"], self.tr["lr"], f,
                                                  instance=self.inst)
        self.center, self.size = [cx, cy], [nw, nh]
        return [cx - nw / 2, cy - nh / 2, nw, nh], score
