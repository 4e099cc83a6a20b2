"""Model registry, weights and staged fine-tuning (tiny inputs, random init: no network, CPU)."""

from __future__ import annotations

import hashlib
import math
import urllib.error
from pathlib import Path

import pytest
import timm
import torch
import torchvision.models as tvm
from torch import nn

from mammocad.models import (AUX_LOSS_WEIGHT, INPUT_NORMS, PHASES, WeightsError, WeightsUnavailable,
                             build_classifier, conv_layers, get_spec, hub_checkpoint_path, list_classifiers,
                             register_classifier, set_frozen_bn_eval, set_trainable)
from mammocad.models import registry, weights
from mammocad.models.backbones import XCEPTION_URL
from mammocad.models.classifier import Backbone

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"
CORAL = SHARED_WEIGHTS / "mobilenet_v2_imagenet_coral.pt"
MODELS = ["mobilenet_v2", "inception_v3", "alexnet", "googlenet", "xception", "medical_cnn"]
IMAGENET_MODELS = [name for name in MODELS if name != "medical_cnn"]


def tiny_batch(name: str, n: int = 2) -> torch.Tensor:
    """(n, 1, s, s) in [0, 1] at the model's smallest usable size (at least 32)."""
    size = max(get_spec(name).min_input_size, 32)
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


def reference_architecture(name: str) -> nn.Module:
    """The stock architecture exactly as torchvision/timm build it to load their ImageNet files."""
    return {"mobilenet_v2": lambda: tvm.mobilenet_v2(),
            "inception_v3": lambda: tvm.inception_v3(aux_logits=True, init_weights=False),
            "alexnet": lambda: tvm.alexnet(),
            "googlenet": lambda: tvm.googlenet(aux_logits=True, init_weights=False),
            "xception": lambda: timm.create_model("legacy_xception")}[name]()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache and a download that fails at once, as without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, path):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(weights, "download_url", no_network)


# --- registry ------------------------------------------------------------------------------------

def test_registry_lists_models_with_their_specs():
    assert list_classifiers() == sorted(MODELS + ["classical", "classical_lr"])
    for name in MODELS:
        spec = get_spec(name)
        assert spec.input_size == (299 if name in ("inception_v3", "xception") else 224)
        assert spec.supports_imagenet == (name != "medical_cnn")
        assert spec.input_norm in INPUT_NORMS
    assert get_spec("mobilenet_v2").input_norm == "imagenet"
    assert get_spec("xception").input_norm == "minus_one_one"  # timm's config: mean = std = 0.5


def test_unknown_model_names_the_available_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'") as err:
        build_classifier("resnet9000", 2)
    assert all(name in str(err.value) for name in MODELS)


def test_register_classifier_adds_a_model(monkeypatch):
    monkeypatch.setattr(registry, "MODEL_SPECS", dict(registry.MODEL_SPECS))

    @register_classifier("tiny", input_size=16, min_input_size=1, input_norm="minus_one_one")
    def tiny() -> Backbone:
        return Backbone(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4)

    assert "tiny" in list_classifiers()
    assert build_classifier("tiny", 3).eval()(torch.rand(2, 1, 16, 16)).shape == (2, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_classifier("tiny", input_size=16, min_input_size=1, input_norm="imagenet")(tiny)
    with pytest.raises(ValueError, match="unknown input normalisation"):
        register_classifier("other", input_size=16, min_input_size=1, input_norm="zscore")


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("medical_cnn", 0)
    with pytest.raises(ValueError, match="dropout"):
        build_classifier("medical_cnn", 2, dropout=1.0)
    with pytest.raises(ValueError, match="unknown input normalisation"):
        build_classifier("medical_cnn", 2, input_norm="zscore")


# --- forward, training step, prediction -----------------------------------------------------------

@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("name", MODELS)
def test_train_step_and_predict(name, num_classes):
    torch.manual_seed(0)
    model = build_classifier(name, num_classes, weights="none", dropout=0.3)
    dropout, dense = model.head
    assert isinstance(dropout, nn.Dropout) and dropout.p == 0.3
    assert isinstance(dense, nn.Linear) and dense.out_features == num_classes

    x, y = tiny_batch(name), torch.tensor([0, num_classes - 1])
    model.train()
    outputs = model.training_outputs(x)
    assert [w for w, _ in outputs] == ([1.0, AUX_LOSS_WEIGHT] if name == "inception_v3" else [1.0])
    assert all(logits.shape == (2, num_classes) for _, logits in outputs)
    loss = sum(w * nn.functional.cross_entropy(logits, y) for w, logits in outputs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = dense.weight.detach().clone()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, dense.weight)

    model.eval()
    with torch.no_grad():
        logits = model(x)
        assert [w for w, _ in model.training_outputs(x)] == [1.0]
    assert logits.shape == (2, num_classes) and torch.isfinite(logits).all()
    assert set(logits.argmax(1).tolist()) <= set(range(num_classes))


def test_input_adapter_repeats_gray_and_normalises():
    x = torch.full((1, 1, 4, 4), 0.25)
    model = build_classifier("medical_cnn", 2, input_norm="imagenet")
    mean, std = INPUT_NORMS["imagenet"]
    for channel in range(3):
        assert torch.allclose(model.input_adapter(x)[0, channel], torch.tensor((0.25 - mean[channel]) / std[channel]))
    model.input_adapter.set_norm("minus_one_one")
    assert torch.allclose(model.input_adapter(x), torch.full((1, 3, 4, 4), -0.5))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 32, 32))


# --- weights ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilenet_v2", "medical_cnn"])
def test_own_checkpoint_roundtrip(name, tmp_path):
    model = build_classifier(name, 3, input_norm="minus_one_one").eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = build_classifier(name, 3, weights=path).eval()
    assert loaded.input_adapter.norm == "minus_one_one"  # carried by the checkpoint
    x = tiny_batch(name)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(WeightsError, match="with 2 classes"):
        build_classifier(name, 2, weights=path)


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_architecture_state_dict_loads_into_backbone(name):
    """The key layout of torchvision's/timm's ImageNet files fits; their 1000-class heads are skipped."""
    reference = reference_architecture(name).state_dict()
    model = build_classifier(name, 2)
    weights.load_backbone_state_dict(model, reference, "reference")
    own = {f"backbone.{key}": value for key, value in reference.items()}
    state = model.state_dict()
    loaded = [key for key in own if key in state]
    assert len(loaded) == len(model.backbone.state_dict())
    assert all(torch.equal(state[key], own[key]) for key in loaded)


def test_wrong_weights_file_lists_keys(tmp_path):
    path = tmp_path / "googlenet.pth"
    torch.save(tvm.googlenet(aux_logits=False, init_weights=False).state_dict(), path)
    with pytest.raises(WeightsError, match=r"not a mobilenet_v2 state_dict; missing backbone keys: features\.0\.0"
                                           r".*unexpected keys: conv1\.conv\.weight"):
        build_classifier("mobilenet_v2", 2, weights=path)
    with pytest.raises(WeightsError, match="no such weights file"):
        build_classifier("mobilenet_v2", 2, weights=tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch state_dict"):
        build_classifier("mobilenet_v2", 2, weights=tmp_path / "junk.pt")


def test_imagenet_offline_names_the_expected_path(offline):
    url = get_spec("mobilenet_v2").imagenet_url
    expected = Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert hub_checkpoint_path(url) == expected
    with pytest.raises(WeightsUnavailable) as err:
        build_classifier("mobilenet_v2", 2, weights="imagenet")
    message = str(err.value)
    assert str(expected) in message and url in message and "--weights PATH" in message
    with pytest.raises(WeightsError, match="medical_cnn has no ImageNet weights"):
        build_classifier("medical_cnn", 2, weights="imagenet")


def test_imagenet_loads_from_cache_without_network(offline):
    reference = tvm.mobilenet_v2().state_dict()
    path = hub_checkpoint_path(get_spec("mobilenet_v2").imagenet_url)
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    model = build_classifier("mobilenet_v2", 2, weights="imagenet")
    assert torch.equal(model.backbone.features[0][0].weight, reference["features.0.0.weight"])
    assert model.input_adapter.norm == "imagenet"


def test_download_checks_the_hash_in_the_file_name(monkeypatch, tmp_path):
    """The real download path, offline: a file:// URL, named torch-hub style name-<sha256 prefix>.pth."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = tmp_path / "source.pth"
    torch.save({"w": torch.ones(2)}, source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    good, bad = tmp_path / f"net-{digest}.pth", tmp_path / "net-00000000.pth"
    good.write_bytes(source.read_bytes())
    bad.write_bytes(source.read_bytes())
    path = weights.imagenet_checkpoint("net", good.as_uri())
    assert path == Path(torch.hub.get_dir()) / "checkpoints" / good.name
    assert torch.equal(weights.read_state_dict(path)["w"], torch.ones(2))
    with pytest.raises(WeightsUnavailable, match="invalid hash"):
        weights.imagenet_checkpoint("net", bad.as_uri())


def test_xception_weights_are_timms_file():
    assert XCEPTION_URL == timm.models.get_pretrained_cfg("legacy_xception").url
    assert hub_checkpoint_path(XCEPTION_URL).name == "xception-43020ad28.pth"


def test_coral_mobilenet_v2_file():
    if not CORAL.is_file():
        pytest.skip(f"shared weights not available: {CORAL} is absent (never shipped with mammocad)")
    state = torch.load(CORAL, map_location="cpu", weights_only=True)
    model = build_classifier("mobilenet_v2", 2, weights=CORAL, input_norm="minus_one_one").eval()
    assert model.input_adapter.norm == "minus_one_one"
    assert torch.equal(model.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert torch.equal(model.backbone.features[18][1].bias, state["features.18.1.bias"])
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 1, 64, 64))).all()


# --- staged fine-tuning -----------------------------------------------------------------------------

def expected_counts(model: nn.Module, phase: str) -> tuple[int, int]:
    """(trainable params, trainable convs), from definition order, which is the call order of these
    sequential backbones: heads, plus every module from the last ceil(n*t/3)-th Conv2d on."""
    modules = list(model.backbone.modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    heads = sum(p.numel() for p in model.head.parameters())
    total = sum(p.numel() for p in model.parameters())
    if phase == "all":
        return total, len(convs)
    k = math.ceil(len(convs) * {"head": 0, "last_third": 1, "last_two_thirds": 2}[phase] / 3)
    if k == 0:
        return heads, 0
    start = next(i for i, m in enumerate(modules) if m is convs[len(convs) - k])
    return heads + sum(p.numel() for m in modules[start:] for p in m.parameters(recurse=False)), k


@pytest.mark.parametrize("name", ["mobilenet_v2", "alexnet", "medical_cnn"])
def test_phase_parameter_counts(name):
    model = build_classifier(name, 2)
    total = sum(p.numel() for p in model.parameters())
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.backbone.modules())
    for phase in PHASES:
        counts = set_trainable(model, phase)
        trainable, convs = expected_counts(model, phase)
        assert counts == {"trainable_params": trainable, "frozen_params": total - trainable,
                          "trainable_conv_layers": convs, "conv_layers": n_convs}, phase
        assert counts["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(ValueError, match="unknown phase"):
        set_trainable(model, "half")


def test_mobilenet_phases_unfreeze_conv_with_its_batchnorm():
    model = build_classifier("mobilenet_v2", 2)
    set_trainable(model, "last_third")
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]  # 52 in definition order
    first = len(convs) - math.ceil(len(convs) / 3)
    assert not convs[first - 1].weight.requires_grad and convs[first].weight.requires_grad
    block = next(m for m in model.backbone.modules() if isinstance(m, nn.Sequential) and m[0] is convs[first])
    assert block[1].weight.requires_grad  # the BatchNorm right after the first unfrozen conv


def test_inception_conv_order_includes_aux_branch():
    model = build_classifier("inception_v3", 2)
    names = [name for name, _ in conv_layers(model)]
    assert len(names) == sum(isinstance(m, nn.Conv2d) for m in model.backbone.modules()) == 96
    aux = names.index("AuxLogits.conv0.conv")
    assert names[aux - 1].startswith("Mixed_6e.") and names[aux + 2].startswith("Mixed_7a.")
    counts = set_trainable(model, "head")
    assert counts["trainable_conv_layers"] == 0 and model.aux_head.weight.requires_grad
    assert counts["trainable_params"] == sum(p.numel() for head in model.heads() for p in head.parameters())


def test_trace_leaves_model_state_alone():
    model = build_classifier("mobilenet_v2", 2).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    conv_layers(model)
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_frozen_batchnorm_stays_in_eval():
    model = build_classifier("mobilenet_v2", 2)
    batchnorms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    set_trainable(model, "head")
    model.train()
    assert set_frozen_bn_eval(model) == len(batchnorms)
    stats = [bn.running_mean.clone() for bn in batchnorms]
    model(tiny_batch("mobilenet_v2"))
    assert all(torch.equal(bn.running_mean, s) for bn, s in zip(batchnorms, stats))

    set_trainable(model, "last_third")
    model.train()
    frozen = set_frozen_bn_eval(model)
    assert 0 < frozen < len(batchnorms)
    assert [bn.training for bn in batchnorms] == [bn.weight.requires_grad for bn in batchnorms]
