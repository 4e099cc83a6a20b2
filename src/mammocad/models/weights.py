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
import warnings
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import torch

from mammocad.models.classifier import Classifier
from mammocad.utils.errors import DataError

_EXAMPLES = 8  # keys listed in an error message


class WeightsError(DataError):
    """Weights that cannot be read or do not fit the model; the message (one line) says which and why.

    A ``DataError``, so the command line reports it as one line like any other bad input.
    """

    def __init__(self, message: str):
        super().__init__(None, message)


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


def imagenet_checkpoint(model_name: str, url: str, what: str = "ImageNet") -> Path:
    """Path of the cached ``what`` ("ImageNet", "COCO") file of ``url``, downloading it first when it is not cached."""
    path = hub_checkpoint_path(url)
    if not path.is_file():
        try:
            download_url(url, path)
        except (OSError, RuntimeError) as err:  # URLError/HTTPError/timeouts are OSErrors; bad hash: RuntimeError
            raise WeightsUnavailable(
                f"{what} weights for {model_name} are not cached and could not be downloaded "
                f"({_one_line(err)}). Download {url} and put it at {path} "
                f"(the torch hub cache; set TORCH_HOME to use another cache), "
                f"or pass a state_dict file instead: --weights PATH") from err
    return path


def _load_problem(err: Exception) -> str:
    """The gist of a ``torch.load`` failure, without torch's advice to retry with weights_only=False
    (which would run any code a foreign pickle holds)."""
    if isinstance(err, pickle.UnpicklingError):
        return "not written by torch.save, or holding objects other than tensors and plain data"
    text = f"{type(err).__name__}: {_one_line(err)}"
    return text if len(text) <= 120 else text[:117] + "..."


def load_torch_file(path: str | os.PathLike, what: str, content: str) -> Any:
    """``torch.load`` of a file the user named, tensors on the CPU, loading only tensors and plain data.

    ``what`` names the file ("no such weights file"), ``content`` what it should hold ("not a
    readable PyTorch state_dict file"). Any file that is not one (a README, a random pickle, a
    zip) raises WeightsError naming the file: on foreign bytes the unpickler fails with almost
    any exception type (UnpicklingError, KeyError, IndexError, EOFError, RuntimeError, ...), so
    all of them are caught here. Its warnings about the pickle protocol of such files are not
    shown.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a {content} file")
    if not path.is_file():
        raise WeightsError(f"{path}: no such {what} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - foreign bytes make the unpickler fail in any way
        raise WeightsError(f"{path}: not a readable {content} file ({_load_problem(err)})") from err


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict (mapping of names to tensors) from a .pt/.pth file, on the CPU."""
    state = load_torch_file(path, "weights", "PyTorch state_dict")
    if isinstance(state, Mapping) and "state_dict" in state and "hyper_parameters" in state:
        raise WeightsError(f"{path}: is a training checkpoint (.ckpt), not a state_dict; evaluate it with "
                           f"`mammocad evaluate-classifier --checkpoint`, or continue its run with --resume")
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
    load_module_state_dict(model.backbone, state, skip=model.replaced_keys, name=model.spec.name, source=source,
                           part="backbone")


def load_module_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, skip: tuple[str, ...],
                           name: str, source: str, part: str) -> None:
    """Load ``state`` into ``module`` leaving out the keys under the prefixes ``skip``, otherwise strictly.

    Every other key of ``module`` must be in ``state`` with the same shape and ``state`` may hold
    nothing else: WeightsError (naming ``source`` and the model ``name``) lists the missing
    ``part`` ("backbone", "model") / unexpected / mismatched keys otherwise.
    """
    kept = {key: value for key, value in state.items() if not key.startswith(skip)}
    try:
        # nn.Module's own method: smp's encoders override it (dropping their classifier keys)
        # and return nothing, where the key lists are needed here.
        result = torch.nn.Module.load_state_dict(module, kept, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise WeightsError(f"{source}: does not fit {name}: {_one_line(err)}") from err
    problems = []
    missing = [key for key in result.missing_keys if not key.startswith(skip)]
    if missing:
        problems.append(f"missing {part} keys: {_examples(missing)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys: {_examples(result.unexpected_keys)}")
    if problems:
        raise WeightsError(f"{source}: not a {name} state_dict; " + "; ".join(problems))


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
