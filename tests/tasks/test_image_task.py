"""The image task: registry, config validation, models, loaders, training loop, metric."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from gsprune import tasks
from gsprune.tasks import base as base_module
from gsprune.tasks.base import lr_factor
from gsprune.tasks.data import InMemoryImages, keep_batch, make_loader
from gsprune.tasks.image import SmallResNet, build_classifier
from gsprune.views import gemm_view, prunable_parameters

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
    reason=f"{FASHION_DIR} is absent: install the Debian package dataset-fashion-mnist "
    "(bash scripts/install_apt.sh apt.txt)",
)


def config(name: str, **changes) -> dict:
    cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, key = dotted.split("__")
        for parent in parents:
            node = node[parent]
        node[key] = value
    return cfg


def small_image_config(**changes) -> dict:
    """The embedded config with a narrow model and a 256-image training subset (fast)."""
    base = {"model_args": {"widths": [8, 16, 32], "blocks": [1, 1, 1], "stem_stride": 2}}
    return config("image", fashion_mnist__train_subset=256, **base, **changes)


def test_registry_and_build():
    assert "image" in tasks.TASKS.names()
    task = tasks.build(config("image"))
    assert task.kind == "image" and task.metric_name == "top1" and task.higher_is_better
    assert task.describe() == {
        "name": "image",
        "kind": "image",
        "scale": "embedded",
        "model": "resnet_small",
        "dataset": "fashion_mnist",
    }
    with pytest.raises(ValueError, match="unknown task 'speach'"):
        tasks.build({"kind": "speach"})
    with pytest.raises(ValueError, match="needs a 'kind' key"):
        tasks.build({"name": "image"})
    with pytest.raises(ValueError, match="unknown image dataset 'cifar'"):
        tasks.build(config("image", dataset="cifar"))


def test_small_resnet_shapes_and_prunable_layers():
    model = SmallResNet(num_classes=10, in_channels=1)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    cfg = config("image")
    params = prunable_parameters(model, cfg["include"], cfg["exclude"])
    assert "conv1.weight" not in params and "fc.weight" not in params
    assert tuple(gemm_view(params["layer3.0.conv2.weight"]).shape) == (256, 2304)
    assert tuple(gemm_view(params["layer2.0.conv1.weight"]).shape) == (128, 576)
    assert tuple(gemm_view(params["layer3.0.downsample.0.weight"]).shape) == (256, 128)
    assert len(params) == 8  # 2 convs per block, 2 downsample convs
    with pytest.raises(ValueError, match="as many positive widths as blocks"):
        SmallResNet(10, 1, widths=(8, 16), blocks=(1,))


def test_torchvision_models_build_without_weights():
    model = build_classifier("resnet18", 7, 3, {})
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="model='resnet_tiny' is unknown"):
        build_classifier("resnet_tiny", 10, 1, {})
    with pytest.raises(ValueError, match="3-channel"):
        build_classifier("resnet18", 10, 1, {})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"scale": "huge"}, "task.scale='huge' is unknown"),
        ({"batch_size": 0}, "task.batch_size=0"),
        ({"dense__lr": -0.1}, "task.dense.lr=-0.1"),
        ({"finetune__optimizer": "lamb"}, "task.finetune.optimizer='lamb' is unknown"),
        ({"dense__schedule": "exp"}, "task.dense.schedule='exp'"),
        ({"dense__warmup": 1.5}, "task.dense.warmup=1.5"),
        ({"dense__epochs": 2.5}, "task.dense.epochs=2.5"),
        # Zero dense epochs would cache an untrained model as the dense baseline.
        ({"dense__epochs": 0}, "task.dense.epochs=0"),
        ({"amp": "fast"}, "task.amp='fast' is not accepted; it must be true, false or auto"),
        ({"exclude": "fc.weight"}, "task.exclude='fc.weight' must be a list"),
        ({"model": "vgg_tiny"}, "model='vgg_tiny' is unknown"),
        ({"model_args": {"depth": 3}}, "depth"),
        ({"fashion_mnist__train_subset": 0}, "train_subset=0"),
        ({"data_dir": "/nonexistent/fashion"}, "dataset-fashion-mnist"),
    ],
)
def test_check_rejects_bad_values(changes, match):
    task = tasks.build(config("image", **changes))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        task.check()


def test_unknown_dataset_section_key():
    with pytest.raises(ValueError, match=r"task.fashion_mnist has unknown key\(s\) \['crop'\]"):
        tasks.build(config("image", fashion_mnist={"crop": 3}))


def test_fingerprint_covers_the_dense_model_only():
    base = tasks.build(config("image")).fingerprint()
    assert tasks.build(config("image", finetune__lr=0.5)).fingerprint() == base
    assert tasks.build(config("image", exclude=[])).fingerprint() == base
    assert tasks.build(config("image", dense__lr=0.5)).fingerprint() != base
    assert tasks.build(config("image", fashion_mnist__train_subset=10)).fingerprint() != base
    assert tasks.build(config("image", model_args={"widths": [8]})).fingerprint() != base


@pytest.mark.parametrize("flags", [frozenset(), frozenset({"avx2", "avx512f"}), {"avx512_bf16"}])
def test_amp_auto_means_bfloat16_where_the_cpu_has_it(monkeypatch, flags):
    """``amp: auto`` follows the CPU's flags; the fingerprint holds the resolved choice, so a
    model trained under bfloat16 is never taken from the cache for a float32 run."""
    monkeypatch.setattr(base_module, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    native = "avx512_bf16" in flags
    assert base_module.bf16_native("cpu") is native
    task = tasks.build(config("image", amp="auto"))
    task.check_common(("embedded", "paper"))
    assert task.amp("cpu") is native
    assert task.fingerprint()["amp"] is task.amp()
    fixed = tasks.build(config("image", amp=native))
    assert fixed.fingerprint() == task.fingerprint()
    model = torch.nn.Linear(4, 4)
    with task.autocast(model):
        out = model(torch.ones(1, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_lr_factor_schedules():
    assert lr_factor(0, 100, "cosine", 0.1, [], 0.1) == pytest.approx(1 / 11)
    assert lr_factor(9, 100, "cosine", 0.1, [], 0.1) == pytest.approx(10 / 11)
    assert lr_factor(10, 100, "cosine", 0.1, [], 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, "cosine", 0.1, [], 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine", 0.1, [], 0.1) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(50, 100, "linear", 0.0, [], 0.1) == pytest.approx(0.5)
    assert lr_factor(70, 100, "constant", 0.0, [], 0.1) == 1.0
    step = [lr_factor(t, 90, "step", 0.0, [1 / 3, 2 / 3], 0.1) for t in (29, 30, 59, 60, 89)]
    assert step == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])


def test_make_optimizer_follows_the_phase_section():
    task = tasks.build(config("imagenet", batch_size=64, data_dir="/x"))
    model = torch.nn.Linear(4, 2)
    optimizer, scheduler = task.make_optimizer(model, "dense", steps=90)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 64 / 256)  # scaled by batch
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4
    lrs = []
    for _ in range(90):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[29] == pytest.approx(0.025) and lrs[30] == pytest.approx(0.0025)
    assert lrs[89] == pytest.approx(0.00025)
    task = tasks.build(config("image", finetune__optimizer="adamw"))
    optimizer, _ = task.make_optimizer(model, "finetune", steps=10)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="phase='warmup' is unknown"):
        task.make_optimizer(model, "warmup", steps=10)


def fake_loaders(size: int = 64, nan: bool = False):
    torch.manual_seed(0)
    images = torch.full((size, 1, 28, 28), math.nan) if nan else torch.randn(size, 1, 28, 28)
    data = InMemoryImages(images, torch.randint(0, 10, (size,)), padding=2, flip=True)
    return (
        make_loader(data, 16, train=True, collate_fn=keep_batch),
        make_loader(data, 32, train=False, collate_fn=keep_batch),
    )


def test_train_one_epoch_calls_after_step_and_evaluates():
    task = tasks.build(small_image_config())
    torch.manual_seed(0)
    model = task.build_model()
    train, evaluation = fake_loaders()
    optimizer, scheduler = task.make_optimizer(model, "dense", steps=len(train))
    before = copy.deepcopy(model.state_dict())
    seen = []
    loss = task.train_one_epoch(model, train, optimizer, scheduler, seen.append, "smoke")
    assert seen == [1, 2, 3, 4] and math.isfinite(loss) and loss > 0
    assert not torch.equal(before["layer1.0.conv1.weight"], model.layer1[0].conv1.weight)
    model.train()
    top1 = task.evaluate(model, evaluation)
    assert 0.0 <= top1 <= 100.0 and model.training  # evaluate restores the mode


def test_non_finite_loss_stops_before_the_update():
    task = tasks.build(small_image_config(amp=False))
    model = task.build_model()
    train, _ = fake_loaders(nan=True)
    optimizer, scheduler = task.make_optimizer(model, "dense", steps=len(train))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(FloatingPointError, match="loss is nan at step 1 of smoke"):
        task.train_one_epoch(model, train, optimizer, scheduler, None, "smoke")
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name])


@needs_fashion
def test_embedded_task_checks_and_trains_on_fashion_mnist():
    task = tasks.build(small_image_config(eval_batch_size=500))
    task.check()
    train, evaluation = task.loaders()
    x, y = next(iter(train))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (128,) and 0 <= int(y.min()) and int(y.max()) <= 9
    assert len(train) == 2 and len(evaluation.dataset) == 10_000  # eval: the full test set
    torch.manual_seed(0)
    model = task.build_model()
    optimizer, scheduler = task.make_optimizer(model, "dense", steps=len(train))
    assert math.isfinite(task.train_one_epoch(model, train, optimizer, scheduler, None, "smoke"))
    x, y = next(iter(evaluation))
    assert x.shape == (500, 1, 28, 28)
    result = task.test(model)
    header, *rows = result.outputs["predictions.tsv"]
    assert header == "index\tlabel\tprediction" and len(rows) == 10_000
    hits = sum(label == guess for label, guess in (row.split("\t")[1:] for row in rows))
    assert result.value == pytest.approx(100.0 * hits / 10_000)
    # Fashion-MNIST's test set has 1,000 images of each class.
    assert task.baseline() == {"name": "majority-class", "value": 10.0, "class": 0}


def test_imagenet_check_names_the_preparation_script_and_the_embedded_task(tmp_path):
    for data_dir in ("???", None, str(tmp_path / "imagenet")):
        task = tasks.build(config("imagenet", data_dir=data_dir))
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            task.check()
        message = str(info.value)
        assert "scripts/prepare_imagenet.py" in message and "`task=image`" in message
    (tmp_path / "imagenet" / "train" / "n01").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="val does not exist"):
        tasks.build(config("imagenet", data_dir=str(tmp_path / "imagenet"))).check()


def make_image_folder(root: Path, classes: list[str], per_class: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                pixels = torch.randint(0, 256, (40, 48, 3), generator=gen, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{name}_{index}.png")


def test_imagenet_layout_checks_and_a_tiny_image_folder_trains(tmp_path):
    make_image_folder(tmp_path, ["n01", "n02"], per_class=2)
    cfg = config(
        "imagenet",
        data_dir=str(tmp_path),
        model="resnet18",
        batch_size=2,
        eval_batch_size=4,
        num_workers=0,
        imagenet={"crop_size": 32, "resize_size": 36},
    )
    task = tasks.build(cfg)
    task.check()
    train, evaluation = task.loaders()
    x, y = next(iter(evaluation))
    assert x.shape == (4, 3, 32, 32) and sorted(y.tolist()) == [0, 0, 1, 1]
    model = task.build_model()
    assert model.fc.out_features == 1000
    optimizer, scheduler = task.make_optimizer(model, "finetune", steps=len(train))
    assert math.isfinite(task.train_one_epoch(model, train, optimizer, scheduler, None, "tiny"))
    assert 0.0 <= task.evaluate(model, evaluation) <= 100.0

    (tmp_path / "val" / "n03").mkdir()
    with pytest.raises(ValueError, match="n03 holds no images"):
        task.check()
    (tmp_path / "val" / "n03" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="different class folders"):
        task.check()


def test_clip_norm_bounds_every_update():
    # Plain SGD without momentum moves the parameters by lr * (clipped gradient), so every
    # step's update has an L2 norm of at most lr * clip_norm; without clipping it is larger.
    def largest_update(clip_norm):
        task = tasks.build(small_image_config(amp=False))
        task.cfg["dense"].update(optimizer="sgd", momentum=0.0, nesterov=False, lr=1.0)
        task.cfg["dense"]["weight_decay"] = 0.0
        torch.manual_seed(0)
        model = task.build_model()
        train, _ = fake_loaders()
        optimizer, scheduler = task.make_optimizer(model, "dense", steps=len(train))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        before = [p.detach().clone() for p in model.parameters()]
        updates = []

        def after_step(step):
            now = [p.detach().clone() for p in model.parameters()]
            moved = torch.cat([(a - b).flatten() for a, b in zip(now, before, strict=True)])
            updates.append(float(moved.norm()))
            before[:] = now

        task.train_one_epoch(model, train, optimizer, scheduler, after_step, "clip", clip_norm)
        return max(updates)

    assert largest_update(0.01) <= 0.01 * (1 + 1e-4)
    assert largest_update(None) > 0.05
