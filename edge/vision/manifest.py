"""A model manifest: everything the gateway must know to run a model file, and nothing in code.

A model is swapped by installing another file with another manifest; a new output family is
one decoder plus one parameter class in the `Family` union below. Manifests are YAML,
validated like the building config, so a wrong key says `yolox_nano.yaml:12:3`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal, Union, get_args

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator

from edge.config import problem_lines
from edge.config import yaml_source
from edge.config.settings import Strict
from edge.config.building import ConfigProblem as ManifestProblem  # a manifest's problems read like the config's: FILE:LINE:COL: path: message
from edge.vision.detection import VisionClass


def _download_url(url: str) -> str:
    if not (url.startswith("https://") or url.startswith("http://")) or len(url) > 2048 or any(c.isspace() for c in url):
        raise ValueError("url must be an http:// or https:// address of the model file")
    return url


DownloadUrl = Annotated[str, AfterValidator(_download_url)]


def spdx_id(licence: str) -> str:
    """The licence's SPDX id: its first word (the rest of the field may explain it), what --accept-licence takes."""
    words = licence.split()
    return words[0] if words else ""


class Input(Strict):
    """How a frame becomes the model's input tensor."""

    name: str | None = Field(None, description="Input tensor name; default: the model's first input.")
    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    colour: Literal["BGR", "RGB"] = Field(description="Channel order the model was trained on.")
    mean: tuple[float, float, float] = Field((0.0, 0.0, 0.0), description="Subtracted per channel, in the model's channel order, on the 0-255 scale.")
    std: tuple[float, float, float] = Field((1.0, 1.0, 1.0), description="Divided per channel after the mean, on the 0-255 scale (255 for a plain /255).")
    resize: Literal["letterbox", "stretch"] = Field(description="letterbox keeps the aspect ratio and pads; stretch resizes to width x height.")
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox padding grey level.")
    align: Literal["top_left", "centre"] = Field("centre", description="Where a letterboxed image sits (YOLOX: top_left; Ultralytics: centre).")

    @field_validator("std")
    @classmethod
    def _nonzero(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in std):
            raise ValueError("every std must be > 0")
        return std


class Yolox(Strict):
    """YOLOX without decoding in the graph: [1, N, 5 + C] raw grid offsets, objectness, class scores."""

    family: Literal["yolox"]
    strides: tuple[int, ...] = (8, 16, 32)


class Yolov8(Strict):
    """YOLOv8 / YOLO11 / YOLO-World / YOLOE: [1, 4 + C (+ M), N] centre boxes in input pixels and class
    scores, no objectness; a segmentation export (YOLOE -seg) adds M mask coefficients after the scores."""

    family: Literal["yolov8"]
    mask_coefficients: int = Field(0, ge=0, le=256, description="Rows after the class scores that are not classes (32 in a -seg export).")


class Yolov5(Strict):
    """YOLOv5 / YOLOv7: [1, N, 5 + C] centre boxes in input pixels, objectness, class scores."""

    family: Literal["yolov5"]


class GflLevel(Strict):
    stride: int = Field(ge=1)
    scores: str = Field(description="Output name of this level's class scores [1, N, C] (sigmoid applied).")
    boxes: str = Field(description="Output name of this level's side distributions [1, N, 4 * (reg_max + 1)].")


class Gfl(Strict):
    """PP-PicoDet / NanoDet GFL heads exported without post-processing: DFL side distances per level."""

    family: Literal["gfl"]
    reg_max: int = Field(7, ge=1, le=64)
    centre: Literal["half_stride", "legacy"] = Field("half_stride", description="Anchor centre: (col + 0.5) * stride, or legacy PicoDet/NanoDet col * stride + 0.5 * (stride - 1).")
    levels: tuple[GflLevel, ...] = Field(min_length=1)


class SsdPriors(Strict):
    feature_maps: tuple[tuple[int, int], ...] = Field(description="(width, height) of each level's grid.")
    min_boxes: tuple[tuple[float, ...], ...] = Field(description="Prior sizes in input pixels, per level.")

    @model_validator(mode="after")
    def _same_levels(self) -> "SsdPriors":
        if len(self.feature_maps) != len(self.min_boxes):
            raise ValueError("feature_maps and min_boxes must have one entry per level")
        return self


class Ssd(Strict):
    """SSD-style scores [1, N, C] (softmax, background first) and boxes [1, N, 4].

    With `priors`, boxes are offsets against them (centre and size variances); without, boxes
    are already corners normalised to 0..1.
    """

    family: Literal["ssd"]
    scores: str = "scores"
    boxes: str = "boxes"
    priors: SsdPriors | None = None
    centre_variance: float = 0.1
    size_variance: float = 0.2


class Decoded(Strict):
    """Exports that already decode: scores [N, C] and boxes [N, 4] (MEMD-style); no priors, no grid."""

    family: Literal["decoded"]
    scores: str = "scores"
    boxes: str = "boxes"
    box_format: Literal["xyxy", "cxcywh"] = "xyxy"
    box_units: Literal["input_pixels", "normalised"] = "input_pixels"


Family = Annotated[Union[Yolox, Yolov8, Yolov5, Gfl, Ssd, Decoded], Field(discriminator="family")]
FAMILIES: tuple[type[Strict], ...] = get_args(get_args(Family)[0])
"""The output families' parameter classes, read from the union: `decoders` keys its decoders by them."""


def family_name(params: type[Strict]) -> str:
    """The `family:` a manifest writes for a parameter class (its Literal)."""
    return get_args(params.model_fields["family"].annotation)[0]


class Thresholds(Strict):
    score: float = Field(0.3, gt=0, le=1, description="Detections below this score are dropped.")
    nms_iou: float = Field(0.45, gt=0, le=1, description="Boxes of one class overlapping more than this are merged.")
    per_class: dict[VisionClass, float] = Field(default_factory=dict, description="Score thresholds that override `score` for a class.")


class Crop(Strict):
    """How a candidate box is cut out for the second stage."""

    margin: float = Field(0.1, ge=0, le=1, description="Box grown by this fraction of its size on each side.")


class CropHead(Strict):
    """A crop-level head `edge vision train` fitted on the frozen detector's features of each candidate box
    (edge/vision/crops.py): the head file, the feature tensors it reads, and its hold threshold."""

    file: str = Field(pattern=r"^[^/\\]+$", description="The head's .npz, beside this manifest.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    features: tuple[str, ...] = Field(min_length=1, description="The model's feature outputs, one per stride, that the head pools at each box.")
    threshold: float = Field(gt=0, le=1, description="A box whose head probability reaches this is an e-bike (chosen by grouped CV on the training side).")
    holds_as: VisionClass = VisionClass.EBIKE


class Trained(Strict):
    """What a trained model was made from: the base it needs and the data it saw."""

    base: str = Field(description="The base detector's manifest name.")
    base_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The base model file's sha256 (the graph this file extends).")
    frames: int = Field(ge=0)
    ebike_frames: int = Field(ge=0)
    boxes: int = Field(ge=0, description="Candidate boxes the head was fitted on.")
    groups: int = Field(ge=0)
    labels_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    site_group: str | None = None
    held_out: int = Field(0, ge=0, description="The site's later frames kept out of training for the eval report.")
    train_s: float = Field(0, ge=0)


class DetectorManifest(Strict):
    """An object detector: a frame in, boxes in the building's classes out."""

    kind: Literal["detector"] = "detector"
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    file: str = Field(pattern=r"^[^/\\]+$", description="Model file name; installed beside this manifest.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str = Field(min_length=1, description="SPDX id or a statement of the terms the weights were obtained under.")
    source: str | None = Field(None, description="Where the weights came from.")
    url: DownloadUrl | None = Field(None, description="Where `edge models fetch` downloads the file (checked against sha256 before it is installed).")
    size: int | None = Field(None, ge=1, description="The file's size in bytes: a longer download is stopped, a shorter one resumed.")
    input: Input
    output: Family
    num_classes: int = Field(ge=1, le=10_000, description="Classes the model scores (not counting an SSD background).")
    classes: dict[int, VisionClass] = Field(min_length=1, description="Model class index -> our class; unmapped classes are dropped.")
    thresholds: Thresholds = Thresholds()
    second_stage: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name of a classifier model (installed, or NAME.yaml beside this manifest) run on candidate boxes.")
    head: CropHead | None = Field(None, description="A crop-level head on the detector's features of each candidate box (YOLOX only).")
    trained: Trained | None = None

    @field_validator("licence")
    @classmethod
    def _licence_given(cls, licence: str) -> str:
        if not licence.strip():
            raise ValueError("a model needs a licence: name the terms its weights were obtained under")
        return licence.strip()

    @model_validator(mode="after")
    def _head_on_yolox(self) -> "DetectorManifest":
        if self.head is not None and not isinstance(self.output, Yolox):
            raise ValueError("a crop head reads YOLOX feature maps: output.family must be yolox")
        return self

    @model_validator(mode="after")
    def _class_map_in_range(self) -> "DetectorManifest":
        for index in self.classes:
            if not 0 <= index < self.num_classes + (1 if isinstance(self.output, Ssd) else 0):
                raise ValueError(f"class map names model class {index}, but the model has {self.num_classes} classes")
        return self


class ClassifierManifest(Strict):
    """A crop classifier: one box's crop in, one of our classes out (e-bike versus bicycle...)."""

    kind: Literal["classifier"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    file: str = Field(pattern=r"^[^/\\]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str = Field(min_length=1)
    source: str | None = None
    url: DownloadUrl | None = None
    size: int | None = Field(None, ge=1)
    input: Input
    output_name: str | None = Field(None, description="Output tensor [1, K]; default the first output.")
    softmax: bool = Field(True, description="Apply softmax to the output (false when the model already gives probabilities).")
    num_classes: int = Field(ge=2, le=10_000)
    classes: dict[int, VisionClass] = Field(min_length=1)
    applies_to: tuple[VisionClass, ...] = Field((VisionClass.BICYCLE, VisionClass.MOTORCYCLE, VisionClass.EBIKE), description="Detector classes whose boxes are classified.")
    min_score: float = Field(0.5, gt=0, le=1, description="The classifier overrides the detector's class only when this sure.")
    crop: Crop = Crop()

    @field_validator("licence")
    @classmethod
    def _licence_given(cls, licence: str) -> str:
        if not licence.strip():
            raise ValueError("a model needs a licence: name the terms its weights were obtained under")
        return licence.strip()

    @model_validator(mode="after")
    def _class_map_in_range(self) -> "ClassifierManifest":
        for index in self.classes:
            if not 0 <= index < self.num_classes:
                raise ValueError(f"class map names model class {index}, but the model has {self.num_classes} classes")
        return self


Manifest = Annotated[Union[DetectorManifest, ClassifierManifest], Field(discriminator="kind")]


class ManifestError(Exception):
    """Every problem found in one manifest, or a model file that does not match it."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


class _Any(BaseModel):
    manifest: Manifest


# pydantic puts the discriminator's value in an error's location; it is not a key in the file
_FAMILY_TAGS = {"detector", "classifier"} | {family_name(params) for params in FAMILIES}


def load(path: Path) -> DetectorManifest | ClassifierManifest:
    """Read and validate a manifest; raises ManifestError listing every problem with its line."""
    path = Path(path)
    file = str(path)
    try:
        document = yaml_source.load_file(path)
    except yaml_source.SourceError as error:
        raise ManifestError([ManifestProblem(file, error.line, error.column, "(yaml)", str(error))]) from None
    if not isinstance(document.data, dict):
        raise ManifestError([ManifestProblem(file, 1, 1, "(root)", "expected a model manifest (a mapping)")])
    data = dict(document.data)
    data.setdefault("kind", "detector")
    try:
        return _Any.model_validate({"manifest": data}).manifest
    except ValidationError as invalid:
        raise ManifestError([ManifestProblem(file, *p) for p in problem_lines.located(invalid, document, loc=_file_loc)]) from None


def _file_loc(loc: tuple) -> tuple:
    """Drop the wrapper key and pydantic's union tags, which are not keys in the file."""
    loc = tuple(p for p in loc[1:] if not (isinstance(p, str) and p in _FAMILY_TAGS))
    return loc[:-1] if loc and loc[-1] == "[key]" else loc


def problem_at(manifest_file: str, path: tuple, message: str) -> ManifestProblem:
    """A problem found after validation (the model file, its shapes), placed on the manifest's line for `path`."""
    try:
        line, column = yaml_source.load_file(manifest_file).position(path)
    except yaml_source.SourceError:
        line, column = 1, 1
    return ManifestProblem(manifest_file, line, column, ".".join(map(str, path)), message)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(manifest: DetectorManifest | ClassifierManifest, model_file: Path, manifest_file: str = "(manifest)") -> None:
    """Refuse a model file whose bytes are not the ones the manifest names."""
    try:
        actual = sha256_of(model_file)
    except OSError as error:
        raise ManifestError([problem_at(manifest_file, ("file",), f"cannot read model file {model_file}: {error}")]) from None
    if actual != manifest.sha256:
        raise ManifestError([problem_at(manifest_file, ("sha256",), f"{model_file} has sha256 {actual}, the manifest says {manifest.sha256}")])
