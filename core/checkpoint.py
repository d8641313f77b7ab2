"""The self-describing checkpoint: one file that says how to build, feed and use the network.

Everything inference needs (architecture, bands, scaling, ground sample distance, tiling
defaults) travels inside the file, so loading needs no side configuration, and a file
trained elsewhere cannot be fed the wrong bands silently.
"""
from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import importlib.util
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NoReturn, Optional

if TYPE_CHECKING:
    import torch

from .errors import UserError

FORMAT_NAME = "thaw-slump-mapper-checkpoint"
FORMAT_VERSION = 1
# The weights ship in model/weights/; only the path is known here (core imports no other package).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parent.parent / "model" / "weights" / "thaw_slump_deeplabv3plus.pt"
FULL_INSTALL_HINT = "install torch from the dock (Detect tab, Install...) or run `make install FULL=1`"

# Architectures we build from segmentation-models-pytorch; anything else is refused on load
# rather than executed, because the class name comes from a file a user picked.
SUPPORTED_ARCHITECTURES = ("DeepLabV3Plus", "DeepLabV3", "Unet", "UnetPlusPlus", "FPN", "PSPNet", "Linknet", "PAN", "MAnet")
KNOWN_BANDS = ("red", "green", "blue", "nir", "red_edge", "coastal", "swir1", "swir2")
SCALING_METHODS = ("percentile", "fixed")


@dataclass
class Checkpoint:
    architecture: Dict[str, Any]
    bands: List[str]
    gsd_m: float
    scaling: Dict[str, Any]
    tile_size: int = 512
    overlap: int = 128
    threshold: float = 0.5
    min_area_m2: float = 3000.0
    version: str = "0.0.0"
    name: str = "thaw-slump-model"
    provenance: Dict[str, Any] = field(default_factory=dict)
    state_dict: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    # Set when the description was read from the ONNX graph beside the .pt (no torch here):
    # then state_dict is empty and onnxruntime runs this graph (engine/onnx_model.py).
    onnx_path: Optional[Path] = None
    # Set when the description came from engine/model_cache.py (no torch, no weights here):
    # the fingerprint of the weights it was remembered with, which names the cached graphs.
    known_fingerprint: Optional[str] = None

    @property
    def trained(self) -> bool:
        """False for a checkpoint whose weights were never fitted to slump labels."""
        return bool(self.provenance.get("trained", False))

    def fingerprint(self) -> str:
        """Stable hash of the weights and the description (used to cache exported models)."""
        if self.known_fingerprint and not self.state_dict:
            return self.known_fingerprint
        h = hashlib.sha256()
        h.update(repr(self.describe_dict()).encode())
        for key in sorted(self.state_dict):
            tensor = self.state_dict[key]
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe_dict(self) -> Dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "architecture": copy.deepcopy(self.architecture),
            "input": {"bands": list(self.bands), "gsd_m": float(self.gsd_m), "scaling": copy.deepcopy(self.scaling)},
            "inference": {
                "tile_size": int(self.tile_size),
                "overlap": int(self.overlap),
                "threshold": float(self.threshold),
                "min_area_m2": float(self.min_area_m2),
            },
            "version": self.version,
            "name": self.name,
            "provenance": copy.deepcopy(self.provenance),
        }

    def validation_line(self) -> str:
        """Instance scores on the validation chips (paper's rule, IoU > 0.5), or '' when unknown."""
        m = self.provenance.get("metrics") or {}
        if "val_f1" not in m:
            return ""
        counts = f" (TP {m['val_tp']}, FP {m['val_fp']}, FN {m['val_fn']})" if "val_tp" in m else ""
        iou = f", pixel IoU {m['val_pixel_iou']:.2f}" if isinstance(m.get("val_pixel_iou"), float) else ""
        return (f"validation precision {m.get('val_precision', 0.0):.2f}, recall {m.get('val_recall', 0.0):.2f}, "
                f"F1 {m['val_f1']:.2f}{counts}{iou}")

    def summary(self) -> str:
        """One line for logs and the dock: name, version, bands, GSD, validation scores or metrics."""
        metrics = self.provenance.get("metrics") or {}
        shown = self.validation_line() or ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(metrics.items())[:4])
        state = "" if self.trained else " [UNTRAINED]"
        return (
            f"{self.name} v{self.version}{state}: bands {'/'.join(self.bands)}, {self.gsd_m:g} m"
            + (f", {shown}" if shown else "")
        )


def build_network(ckpt: Checkpoint, load_weights: bool = True) -> "torch.nn.Module":
    """Instantiate the segmentation-models-pytorch network described by ``ckpt``."""
    import segmentation_models_pytorch as smp

    cls = getattr(smp, ckpt.architecture["class"])
    kwargs = dict(ckpt.architecture.get("kwargs", {}))
    kwargs["encoder_weights"] = None  # weights come from the checkpoint, never a download
    try:
        net = cls(**kwargs)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as err:
        setting = str(err).strip().splitlines()[0].split(":")[0][:60] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Checkpoint {ckpt.path or ckpt.name}: its architecture settings do not build a network ({type(err).__name__}: {setting}); "
            "pick a checkpoint saved by this plugin."
        ) from None
    if load_weights and ckpt.state_dict:
        missing, unexpected = net.load_state_dict(ckpt.state_dict, strict=False)
        if missing or unexpected:
            raise UserError(
                f"Checkpoint {ckpt.path or ckpt.name}: weights do not fit its architecture "
                f"({len(missing)} missing, {len(unexpected)} unexpected tensors); re-export it with this plugin."
            )
    net.eval()
    return net


def new_checkpoint(
    net: "torch.nn.Module",
    architecture: Dict[str, Any],
    bands: List[str],
    gsd_m: float,
    scaling: Dict[str, Any],
    **settings: Any,
) -> Checkpoint:
    """Wrap a network in a checkpoint (weights copied to CPU)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    ckpt = Checkpoint(architecture=architecture, bands=list(bands), gsd_m=float(gsd_m), scaling=scaling, state_dict=state, **settings)
    ckpt.provenance.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    _validate(ckpt.describe_dict(), "new checkpoint")
    return ckpt


def save_checkpoint(ckpt: Checkpoint, path: Path) -> Path:
    """Write atomically: a half-written checkpoint must never replace a good one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = ckpt.describe_dict()
    payload["state_dict"] = ckpt.state_dict
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)
    ckpt.path = path
    return path


def checkpoint_from_description(payload: Dict[str, Any], where: str, path: Path, **extra: Any) -> Checkpoint:
    """A checkpoint without weights from a stored description (``describe_dict``'s inverse),
    validated as a loaded one is: what the ONNX light path and the torch-free cache read."""
    _validate(payload, where)
    inp, inf = payload["input"], payload["inference"]
    return Checkpoint(
        architecture=payload["architecture"], bands=list(inp["bands"]), gsd_m=float(inp["gsd_m"]),
        scaling=dict(inp["scaling"]), tile_size=int(inf["tile_size"]), overlap=int(inf["overlap"]),
        threshold=float(inf["threshold"]), min_area_m2=float(inf["min_area_m2"]), version=str(payload["version"]),
        name=str(payload["name"]), provenance=dict(payload.get("provenance") or {}), path=path, **extra,
    )


def torch_available() -> bool:
    """Whether torch can be imported, without importing it (that alone takes seconds)."""
    return importlib.util.find_spec("torch") is not None


def require_checkpoint_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint not found: {path}. Pick an existing .pt file or leave it empty for the bundled model.")
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load and validate a torch checkpoint; every problem is a one-line ``UserError``.
    Detection without torch reads the ONNX graph instead: engine.onnx_model.load_detection_checkpoint."""
    path = require_checkpoint_file(path)
    if not torch_available():
        raise UserError(f"Checkpoint {path.name} needs torch to be read here; {FULL_INSTALL_HINT}.")
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError, AttributeError, TypeError) as err:
        raise UserError(
            f"Checkpoint {path.name} is not a readable thaw slump checkpoint ({_load_failure(err)}); "
            "pick a file saved by this plugin."
        ) from None
    if not isinstance(payload, dict):
        raise UserError(f"Checkpoint {path.name} is not a thaw slump checkpoint (no description inside); pick a file saved by this plugin.")
    _validate(payload, path.name)
    inp, inf = payload["input"], payload["inference"]
    ckpt = Checkpoint(
        architecture=payload["architecture"],
        bands=list(inp["bands"]),
        gsd_m=float(inp["gsd_m"]),
        scaling=dict(inp["scaling"]),
        tile_size=int(inf["tile_size"]),
        overlap=int(inf["overlap"]),
        threshold=float(inf["threshold"]),
        min_area_m2=float(inf["min_area_m2"]),
        version=str(payload["version"]),
        name=str(payload["name"]),
        provenance=dict(payload.get("provenance") or {}),
        state_dict=payload["state_dict"],
        path=path,
    )
    return ckpt


def _load_failure(err: BaseException) -> str:
    """Why torch.load failed, in the user's words rather than torch's internals."""
    text = str(err).lower()
    if "unsupported global" in text:
        return "it holds Python objects other than tensors, which are never loaded for safety"
    if isinstance(err, pickle.UnpicklingError) or "weights only load failed" in text:
        return "not a PyTorch file"
    if isinstance(err, (EOFError, zipfile.BadZipFile)) or "central directory" in text or "truncated" in text or "failed reading" in text:
        return "the file is truncated or damaged"
    if isinstance(err, PermissionError):
        return "the file cannot be read: permission denied"
    if isinstance(err, OSError):
        return f"the file cannot be read: {err.strerror or 'input/output error'}"
    return "not a PyTorch file"


def bundled_checkpoint_path() -> Path:
    return BUNDLED_CHECKPOINT


def checkpoint_or_bundled(path: Optional[Path | str]) -> Path:
    """The checkpoint a user named, or the bundled one when the choice is left empty."""
    return Path(path) if path else BUNDLED_CHECKPOINT


def _validate(payload: Dict[str, Any], where: str) -> None:
    """Raise one UserError naming the first thing wrong in a checkpoint's description."""

    def fail(what: str) -> NoReturn:
        raise UserError(f"Checkpoint {where}: {what}; pick a checkpoint saved by this plugin (or re-save it with `train`).")

    _check_format(payload, fail)
    kwargs = _check_architecture(payload["architecture"], fail)
    bands = _check_input(payload["input"], kwargs, fail)
    _check_scaling(payload["input"]["scaling"], bands, fail)
    _check_inference(payload["inference"], fail)


# Each check below calls ``fail`` (which raises) at its first problem, in the order a user
# fixes them: the file's format, then the network, its input, its scaling, its inference defaults.
Fail = Callable[[str], NoReturn]


def _check_format(payload: Dict[str, Any], fail: Fail) -> None:
    if payload.get("format") != FORMAT_NAME:
        fail(f"format is {payload.get('format')!r}, expected {FORMAT_NAME!r}")
    if payload.get("format_version") != FORMAT_VERSION:
        fail(f"format version {payload.get('format_version')!r} is not supported (this plugin reads {FORMAT_VERSION})")
    for key in ("architecture", "input", "inference", "version", "name"):
        if key not in payload:
            fail(f"missing key '{key}'")
    if "state_dict" in payload and not isinstance(payload["state_dict"], dict):
        fail("'state_dict' is not a dictionary of tensors")


def _check_architecture(arch: Any, fail: Fail) -> Dict[str, Any]:
    """The architecture's constructor keyword arguments, once the class is one we build."""
    if not isinstance(arch, dict) or arch.get("class") not in SUPPORTED_ARCHITECTURES:
        fail(f"architecture class {arch.get('class') if isinstance(arch, dict) else arch!r} is not one of {', '.join(SUPPORTED_ARCHITECTURES)}")
    kwargs = arch.get("kwargs")
    if not isinstance(kwargs, dict) or "encoder_name" not in kwargs:
        fail("architecture kwargs lack 'encoder_name'")
    return kwargs


def _check_input(inp: Dict[str, Any], kwargs: Dict[str, Any], fail: Fail) -> List[str]:
    """The input bands, once they match the network's channels and the ground sample distance is sane."""
    for key in ("bands", "gsd_m", "scaling"):
        if key not in inp:
            fail(f"missing key 'input.{key}'")
    bands = inp["bands"]
    if not isinstance(bands, (list, tuple)) or not bands or any(b not in KNOWN_BANDS for b in bands):
        fail(f"input bands {bands!r} must be a list drawn from {', '.join(KNOWN_BANDS)}")
    if int(kwargs.get("in_channels", 3)) != len(bands):
        fail(f"the network takes {kwargs.get('in_channels', 3)} channels but {len(bands)} bands are listed")
    try:
        gsd = float(inp["gsd_m"])
    except (TypeError, ValueError):
        gsd = -1.0
    if not gsd > 0:
        fail(f"input.gsd_m must be a positive number of metres, got {inp['gsd_m']!r}")
    return bands


def _check_scaling(scaling: Any, bands: List[str], fail: Fail) -> None:
    if not isinstance(scaling, dict) or scaling.get("method") not in SCALING_METHODS:
        fail(f"input.scaling.method must be one of {', '.join(SCALING_METHODS)}")
    for key in ("mean", "std"):
        if len(scaling.get(key, [])) != len(bands):
            fail(f"input.scaling.{key} needs one value per band")
    if scaling["method"] == "percentile" and not (0 <= scaling.get("low_pct", -1) < scaling.get("high_pct", -1) <= 100):
        fail("input.scaling needs 0 <= low_pct < high_pct <= 100")
    if scaling["method"] == "fixed" and not (len(scaling.get("min", [])) == len(bands) == len(scaling.get("max", []))):
        fail("input.scaling 'fixed' needs one min and one max per band")


def _check_inference(inf: Dict[str, Any], fail: Fail) -> None:
    for key in ("tile_size", "overlap", "threshold", "min_area_m2"):
        if key not in inf:
            fail(f"missing key 'inference.{key}'")
    for key in ("tile_size", "overlap", "threshold", "min_area_m2"):
        if isinstance(inf[key], bool) or not isinstance(inf[key], (int, float)):
            fail(f"inference.{key} must be a number, got {inf[key]!r}"[:160])
    if not (32 <= int(inf["tile_size"]) <= 4096 and int(inf["tile_size"]) % 32 == 0):
        fail("inference.tile_size must be a multiple of 32 between 32 and 4096")
    if not 0 <= int(inf["overlap"]) < int(inf["tile_size"]) // 2 + 1:
        fail("inference.overlap must be between 0 and half the tile size")
    if not 0.0 < float(inf["threshold"]) < 1.0:
        fail("inference.threshold must lie between 0 and 1")
