"""Initial weights of a classifier: "none", "imagenet" (torch hub cache, download) or a file.

Every ImageNet file, torchvision's and timm's (legacy Xception) alike, lives in the torch hub
cache, ``torch.hub.get_dir()/checkpoints/<file name of the URL>`` (``$TORCH_HOME/hub/...``,
default ``~/.cache/torch/hub/...``), the very place ``torchvision.models.*(weights=...)`` and
``timm.create_model(..., pretrained=True)`` use. A file found there is loaded without network;
otherwise it is downloaded (hash checked like torch hub), and when that fails,
``WeightsUnavailable`` says which file to put where.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import torch

from mammocad.models.classifier import Classifier

_EXAMPLES = 8  # keys listed in an error message


class WeightsError(RuntimeError):
    """Weights that cannot be read or do not fit the model; the message says which and why."""


class WeightsUnavailable(WeightsError):
    """ImageNet weights that are neither in the torch hub cache nor downloadable (e.g. offline)."""


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub caches the file of ``url``: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def download_url(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` like torch hub (SHA-256 prefix from the file name checked)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None, progress=False)


def imagenet_checkpoint(model_name: str, url: str) -> Path:
    """Path of the cached ImageNet file of ``url``, downloading it first when it is not cached."""
    path = hub_checkpoint_path(url)
    if not path.is_file():
        try:
            download_url(url, path)
        except (OSError, RuntimeError) as err:  # URLError/HTTPError/timeouts are OSErrors; bad hash: RuntimeError
            raise WeightsUnavailable(
                f"ImageNet weights for {model_name} are not cached and could not be downloaded "
                f"({_one_line(err)}). Download {url} and put it at {path} "
                f"(the torch hub cache; set TORCH_HOME to use another cache), "
                f"or pass a state_dict file instead: --weights PATH") from err
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict (mapping of names to tensors) from a .pt/.pth file, on the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: no such weights file") from err
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise WeightsError(f"{path}: not a readable PyTorch state_dict file ({_one_line(err)})") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict (a mapping of names to tensors)")
    return dict(state)


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:_EXAMPLES])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > _EXAMPLES else shown


def load_backbone_state_dict(model: Classifier, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load an architecture-format state_dict (torchvision/timm keys) into ``model.backbone``.

    Keys under ``model.replaced_keys`` (the architecture's own ImageNet classifier) are skipped;
    every other backbone key must be present with the same shape and nothing else may be there,
    otherwise WeightsError lists the missing / unexpected / mismatched keys. The heads keep their
    random init.
    """
    kept = {key: value for key, value in state.items() if not key.startswith(model.replaced_keys)}
    try:
        result = model.backbone.load_state_dict(kept, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise WeightsError(f"{source}: does not fit {model.spec.name}: {_one_line(err)}") from err
    problems = []
    if result.missing_keys:
        problems.append(f"missing backbone keys: {_examples(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys: {_examples(result.unexpected_keys)}")
    if problems:
        raise WeightsError(f"{source}: not a {model.spec.name} state_dict; " + "; ".join(problems))


def load_checkpoint_state_dict(model: Classifier, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load a state_dict of this registry's own model (``model.state_dict()``), strictly, heads included.

    It also restores the input normalisation stored with it (``input_adapter.mean``/``std``).
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{source}: does not fit {model.spec.name} with {model.num_classes} classes: "
                           f"{_one_line(err)}") from err


def load_weights(model: Classifier, weights: str | os.PathLike) -> None:
    """Initialise ``model`` in place from ``weights``.

    - "none": keep the random init.
    - "imagenet": the architecture's ImageNet weights (see the module docstring), backbone only.
    - anything else: path of a state_dict file (.pt/.pth), either
      * a checkpoint of this registry's own model (keys start with ``backbone.``): loaded whole,
        strictly; it must have the same model and number of classes; or
      * an architecture-format state_dict (e.g. ``torchvision.models.mobilenet_v2().state_dict()``,
        1000-class head included): loaded into the backbone, see ``load_backbone_state_dict``.
    """
    if weights == "none":
        return
    if weights == "imagenet":
        if model.spec.imagenet_url is None:
            raise WeightsError(f"{model.spec.name} has no ImageNet weights; use weights 'none' or a state_dict file")
        path = imagenet_checkpoint(model.spec.name, model.spec.imagenet_url)
        load_backbone_state_dict(model, read_state_dict(path), str(path))
        return
    state = read_state_dict(weights)
    if any(key.startswith("backbone.") for key in state):
        load_checkpoint_state_dict(model, state, str(weights))
    else:
        load_backbone_state_dict(model, state, str(weights))
