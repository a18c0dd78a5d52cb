"""The model runtime: a manifest and its ONNX file become a `Detector`.

onnxruntime and OpenCV are imported here, and this module is imported only when a camera is
configured. The session uses a fixed, small number of intra-op threads (1 by default) so
inference never competes with the door path for every core; the camera worker that calls
`detect` lowers its own OS priority, and `session_options` lets it tune anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.vision import decoders
from edge.vision import manifest as m
from edge.vision.detection import Detection, Detector, VisionClass

SessionHook = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the frame landed in the model's input: input pixels = frame pixels * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_frame(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        out = boxes.astype(np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.offset_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.offset_y) / self.scale_y
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def preprocess(frame_bgr: np.ndarray, spec: m.Input) -> tuple[np.ndarray, Placement]:
    """One BGR uint8 frame -> the model's input tensor (batch of one) and where the frame sits in it."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"expected a BGR frame (H, W, 3), got shape {frame_bgr.shape}")
    h, w = frame_bgr.shape[:2]
    if spec.resize == "stretch":
        image = cv2.resize(frame_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        placement = Placement(spec.width / w, spec.height / h, 0.0, 0.0)
    else:
        scale = min(spec.width / w, spec.height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        image = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
        ox, oy = (0, 0) if spec.align == "top_left" else ((spec.width - nw) // 2, (spec.height - nh) // 2)
        image[oy:oy + nh, ox:ox + nw] = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        placement = Placement(nw / w, nh / h, float(ox), float(oy))
    if spec.colour == "RGB":
        image = image[:, :, ::-1]
    if spec.layout == "NCHW":
        image = image.transpose(2, 0, 1)  # a view: the one copy is the float conversion below
    tensor = image.astype(np.float32, order="C")
    shape = (3, 1, 1) if spec.layout == "NCHW" else (1, 1, 3)
    if any(spec.mean):
        tensor -= np.asarray(spec.mean, np.float32).reshape(shape)
    if any(s != 1 for s in spec.std):
        tensor *= (1 / np.asarray(spec.std, np.float32)).reshape(shape)
    return tensor[None], placement


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by per-class non-maximum suppression (OpenCV's batched NMS)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)


def open_session(model_file: Path, threads: int = 1, session_options: SessionHook | None = None) -> Any:
    """An onnxruntime CPU session with `threads` intra-op threads and no inter-op parallelism."""
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads} (0 would let onnxruntime take every core)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if session_options is not None:
        session_options(options)
    try:
        return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for a file it cannot use
        raise m.ManifestError([m.ManifestProblem(str(model_file), 1, 1, "file", f"onnxruntime cannot load the model: {error}")]) from None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame made ready for the model: the input tensor, where the frame sits in it, and the
    frame itself (the second stage crops from it)."""

    frame: np.ndarray
    tensor: np.ndarray
    placement: Placement


class OnnxDetector:
    """A detector manifest run by onnxruntime; satisfies `StagedDetector`."""

    def __init__(self, manifest: m.DetectorManifest, session: Any, second_stage: "CropClassifier | None" = None) -> None:
        self.manifest = manifest
        self.session = session
        self.second_stage = second_stage
        self._decode = decoders.decoder_for(manifest.output)
        self._input_name = manifest.input.name or session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]
        thresholds = manifest.thresholds
        self._floor = min([thresholds.score, *thresholds.per_class.values()])

    def prepare(self, frame_bgr: np.ndarray) -> Prepared:
        """Resize, colour order, layout and normalisation: no model, safe from any thread."""
        tensor, placement = preprocess(frame_bgr, self.manifest.input)
        return Prepared(frame_bgr, tensor, placement)

    def _ready(self, frame_bgr: np.ndarray | Prepared) -> Prepared:
        return frame_bgr if isinstance(frame_bgr, Prepared) else self.prepare(frame_bgr)

    def raw(self, frame_bgr: np.ndarray | Prepared) -> tuple[dict[str, np.ndarray], Placement]:
        """The model's outputs by name, and the frame's placement in the input (for tools and benchmarks)."""
        prepared = self._ready(frame_bgr)
        values = self.session.run(self._output_names, {self._input_name: prepared.tensor})
        return dict(zip(self._output_names, values)), prepared.placement

    def candidates(self, frame_bgr: np.ndarray | Prepared) -> list[tuple[int, float, tuple[float, float, float, float]]]:
        """Every box after NMS as (model class, score, box in frame pixels), mapped or not."""
        prepared = self._ready(frame_bgr)
        outputs, placement = self.raw(prepared)
        return self._decoded(outputs, placement, prepared)

    def _decoded(self, outputs: dict[str, np.ndarray], placement: Placement, prepared: Prepared) -> list[tuple[int, float, tuple[float, float, float, float]]]:
        boxes, scores, classes = self._decode(self.manifest.output, outputs, self.manifest.input, self._floor)
        keep = nms(boxes, scores, classes, self.manifest.thresholds.nms_iou)
        h, w = prepared.frame.shape[:2]
        framed = placement.to_frame(boxes[keep], w, h)
        return [(int(c), float(s), tuple(float(v) for v in b)) for c, s, b in zip(classes[keep], scores[keep], framed)]

    def infer(self, prepared: Prepared) -> list[Detection]:
        """The model on a prepared frame: detections in the building's classes above their thresholds."""
        return self._mapped(self.candidates(prepared), prepared)

    def _mapped(self, candidates: list[tuple[int, float, tuple[float, float, float, float]]], prepared: Prepared) -> list[Detection]:
        """Candidates in the building's classes above their thresholds, through the second stage if any."""
        thresholds = self.manifest.thresholds
        found = []
        for index, score, box in candidates:
            cls = self.manifest.classes.get(index)
            if cls is None or score < thresholds.per_class.get(cls, thresholds.score):
                continue
            found.append(Detection(cls, score, box))
        if self.second_stage is not None:
            found = self.second_stage.refine(prepared.frame, found)
        return found

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        return self.infer(self.prepare(frame_bgr))


class HeadDetector(OnnxDetector):
    """A YOLOX detector with a crop-level head (edge/vision/crops.py): each candidate box the base
    proposes is judged an e-bike or not on the model's own features of that box. A box the head
    calls an e-bike replaces the base's bicycle or motorcycle over it (the base's words for an
    e-bike, which would otherwise suppress it); the base's other detections pass unchanged."""

    def __init__(self, manifest: m.DetectorManifest, session: Any, head: Any, second_stage: "CropClassifier | None" = None) -> None:
        super().__init__(manifest, session, second_stage)
        self.head = head

    def infer(self, prepared: Prepared) -> list[Detection]:
        from edge.vision import crops

        assert self.manifest.head is not None and isinstance(self.manifest.output, m.Yolox)
        outputs, placement = self.raw(prepared)
        spec, strides = self.manifest.input, self.manifest.output.strides
        raw = next(iter(outputs.values()))  # YOLOX's one output comes first; the features follow it
        maps = [outputs[name] for name in self.manifest.head.features]
        candidates = crops.yolox_candidates(raw, strides, spec.width, spec.height)
        h, w = prepared.frame.shape[:2]
        ebikes = []
        if candidates:
            x = np.stack([crops.box_features(c, maps, strides, spec.width, spec.height) for c in candidates])
            probabilities = self.head.probability(x)
            framed = placement.to_frame(np.array([c.box for c in candidates], np.float32), w, h)
            ebikes = [Detection(self.manifest.head.holds_as, float(p), tuple(float(v) for v in b))
                      for p, b in zip(probabilities, framed) if p >= self.manifest.head.threshold]
        from edge.vision.confirm import iou

        base = [d for d in self._mapped(self._decoded(outputs, placement, prepared), prepared)
                if not (d.cls in (VisionClass.BICYCLE, VisionClass.MOTORCYCLE) and any(iou(d.box, e.box) >= 0.5 for e in ebikes))]
        return ebikes + base


def check_against_model(manifest: m.DetectorManifest | m.ClassifierManifest, session: Any, file: str = "(manifest)") -> None:
    """Refuse a manifest whose input size or output names are not the model's, at load rather than per frame."""
    problems = []
    inputs = {i.name: i.shape for i in session.get_inputs()}
    name = manifest.input.name or session.get_inputs()[0].name
    if name not in inputs:
        problems.append(m.problem_at(file, ("input", "name"), f"the model has no input {name!r}; it has {sorted(inputs)}"))
    else:
        shape = inputs[name]
        expected = [manifest.input.height, manifest.input.width]
        spatial = shape[2:4] if manifest.input.layout == "NCHW" else shape[1:3]
        fixed = [d for d in spatial if isinstance(d, int)]
        if len(shape) != 4 or (len(fixed) == 2 and fixed != expected):
            problems.append(m.problem_at(file, ("input",), (
                f"the model's input {name!r} is {shape}; the manifest says {manifest.input.layout} "
                f"{manifest.input.width}x{manifest.input.height}")))
    outputs = {o.name for o in session.get_outputs()}
    for wanted in decoders.output_names(manifest.output) if isinstance(manifest, m.DetectorManifest) else [manifest.output_name]:
        if wanted is not None and wanted not in outputs:
            problems.append(m.problem_at(file, ("output",), f"the model has no output {wanted!r}; it has {sorted(outputs)}"))
    if problems:
        raise m.ManifestError(problems)


class CropClassifier:
    """The second stage: classifies the crop of each candidate box and may change its class."""

    def __init__(self, manifest: m.ClassifierManifest, session: Any) -> None:
        self.manifest = manifest
        self.session = session
        self._input_name = manifest.input.name or session.get_inputs()[0].name
        self._output_name = manifest.output_name or session.get_outputs()[0].name

    def classify(self, crop_bgr: np.ndarray) -> tuple[VisionClass | None, float]:
        tensor, _ = preprocess(crop_bgr, self.manifest.input)
        (logits,) = self.session.run([self._output_name], {self._input_name: tensor})
        probs = decoders._softmax(logits.reshape(-1)) if self.manifest.softmax else logits.reshape(-1)
        index = int(probs.argmax())
        return self.manifest.classes.get(index), float(probs[index])

    def refine(self, frame_bgr: np.ndarray, detections: list[Detection]) -> list[Detection]:
        h, w = frame_bgr.shape[:2]
        out = []
        for d in detections:
            if d.cls not in self.manifest.applies_to:
                out.append(d)
                continue
            x1, y1, x2, y2 = d.box
            mx, my = (x2 - x1) * self.manifest.crop.margin, (y2 - y1) * self.manifest.crop.margin
            crop = frame_bgr[max(0, int(y1 - my)):min(h, int(y2 + my) + 1), max(0, int(x1 - mx)):min(w, int(x2 + mx) + 1)]
            if crop.size == 0:
                out.append(d)
                continue
            cls, score = self.classify(crop)
            out.append(Detection(cls, score, d.box) if cls is not None and score >= self.manifest.min_score else d)
        return out


def _model_file(manifest: m.DetectorManifest | m.ClassifierManifest, manifest_path: Path, model_file: Path | None) -> Path:
    path = Path(model_file) if model_file is not None else Path(manifest_path).parent / manifest.file
    m.verify_file(manifest, path, str(manifest_path))
    return path


def _second_stage_manifest(manifest_path: Path, name: str) -> Path:
    """NAME.yaml beside the detector's manifest (the repository's layout), else the installed NAME/manifest.yaml."""
    beside = manifest_path.parent / f"{name}.yaml"
    return beside if beside.exists() else manifest_path.parent.parent / name / "manifest.yaml"


def load_classifier(manifest_path: Path, threads: int = 1, *, model_file: Path | None = None,
                    session_options: SessionHook | None = None) -> CropClassifier:
    manifest = m.load(manifest_path)
    if not isinstance(manifest, m.ClassifierManifest):
        raise m.ManifestError([m.ManifestProblem(str(manifest_path), 1, 1, "kind", "expected a classifier manifest")])
    session = open_session(_model_file(manifest, manifest_path, model_file), threads, session_options)
    check_against_model(manifest, session, str(manifest_path))
    return CropClassifier(manifest, session)


def load_detector(manifest_path: Path, threads: int = 1, *, model_file: Path | None = None,
                  session_options: SessionHook | None = None) -> Detector:
    """Load the model a detector manifest names, after checking its sha256; raises ManifestError.

    The model file is found beside the manifest (where `edge models install` puts both) unless
    `model_file` names it. A manifest's `second_stage` classifier is loaded beside it too.
    """
    manifest_path = Path(manifest_path)
    manifest = m.load(manifest_path)
    if not isinstance(manifest, m.DetectorManifest):
        raise m.ManifestError([m.ManifestProblem(str(manifest_path), 1, 1, "kind", "expected a detector manifest")])
    session = open_session(_model_file(manifest, manifest_path, model_file), threads, session_options)
    check_against_model(manifest, session, str(manifest_path))
    second = None
    if manifest.second_stage is not None:
        second = load_classifier(_second_stage_manifest(manifest_path, manifest.second_stage), threads, session_options=session_options)
    if manifest.head is not None:
        return HeadDetector(manifest, session, _load_head(manifest, manifest_path), second)
    return OnnxDetector(manifest, session, second)


def _load_head(manifest: m.DetectorManifest, manifest_path: Path) -> Any:
    """The crop head's .npz beside the manifest, after checking its sha256 and that the model has its features."""
    from edge.vision import crops

    assert manifest.head is not None
    path = manifest_path.parent / manifest.head.file
    try:
        actual = m.sha256_of(path)
    except OSError as error:
        raise m.ManifestError([m.problem_at(str(manifest_path), ("head", "file"), f"cannot read the head {path}: {error}")]) from None
    if actual != manifest.head.sha256:
        raise m.ManifestError([m.problem_at(str(manifest_path), ("head", "sha256"), f"{path} has sha256 {actual}, the manifest says {manifest.head.sha256}")])
    head = crops.Head.load(path)
    head.threshold = manifest.head.threshold
    return head
