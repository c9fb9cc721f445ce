"""Mask^X R-CNN end to end: ops maskx against ops torchvision in the same run.

Run: python -m benchmarks -k model

The same model (same weights) runs on the maskx ops and on torchvision's
(``ModelConfig.ops``). Two configurations:

- small: configs/synthetic.yaml (half-width ResNet-18 GroupNorm FPN-64, 25 classes), two
  synthetic scenes of about 300 px (320 px after resizing) with their instances (masks
  for set A of the 'synthetic' split);
- coco: the COCO configuration (ResNet-50-FPN with frozen BatchNorm, 81 classes, 512
  RoIs per image), two 800x1333 images with 20 instances each, masks for the VOC
  classes (random weights: nothing is downloaded).

Groups:

- ``model <config> train step``: forward and backward of one batch of two images.
- ``model <config> inference``: one batch of two images, 100 detections per image (score
  threshold 0, so a random-weight model keeps them), masks pasted at image size.
- ``model <config> train/inference: replaced parts``: the operations ``ops`` swaps
  (FPN pooling forward and backward, RPN NMS, mask targets, T, mask logits and loss,
  detection post-processing), replayed on copies of the inputs they received in the
  step above (the copies are made outside the timed region).
- ``model <config> inference: mask pasting``: the inference pass's mask pasting (also
  swapped by ``ops``), replayed the same way and timed on its own, since at image size
  its cost is mostly the fresh memory of its output.

The whole step minus these is what the kernels do not touch: backbone, RPN head and
anchors, box head FCs, mask head convolutions, resizing.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from maskx.data import COCO_CATEGORIES, VOC_CATEGORY_IDS, CategoryMap, resolve_split
from maskx.data.synthetic import SYNTHETIC_CATEGORIES, render_scene
from maskx.engine.config import load_run_config
from maskx.model import MaskXRCNN, ModelConfig
from maskx.model.ops import MASKX_OPS, TORCHVISION_OPS, DetectionOps

REPO = Path(__file__).resolve().parents[1]
ROUNDS = {"small": 5, "coco": 3}


def _masks_to_target(masks: np.ndarray, labels: list[int], a_labels: set[int]) -> dict:
    masks = torch.from_numpy(np.ascontiguousarray(masks)).to(torch.uint8)
    boxes = []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    has_mask = torch.tensor([label in a_labels for label in labels])
    masks[~has_mask] = 0
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
            "masks": masks, "has_mask": has_mask}


def small_workload():
    recipe = load_run_config(REPO / "configs" / "synthetic.yaml")
    config = dataclasses.replace(recipe.model, num_classes=len(SYNTHETIC_CATEGORIES) + 1)
    categories = [{"id": i, "name": n} for i, n in SYNTHETIC_CATEGORIES]
    a_labels = set(resolve_split("synthetic", categories)[0])  # ids are the labels here
    images, targets = [], []
    for seed in (1, 2):
        scene = render_scene(np.random.default_rng([seed, 7]))
        images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
        targets.append(_masks_to_target(scene.masks.transpose(2, 0, 1), scene.category_ids, a_labels))
    return config, images, targets


def coco_workload():
    config = ModelConfig(num_classes=81)
    g = torch.Generator().manual_seed(0)
    voc_labels = set(CategoryMap([{"id": i, "name": n} for i, n in COCO_CATEGORIES]).labels(VOC_CATEGORY_IDS))
    images, targets = [], []
    for _ in range(2):
        # Smooth random images (upsampled noise), 20 elliptical instances each.
        images.append(torch.nn.functional.interpolate(torch.rand(1, 3, 50, 84, generator=g), size=(800, 1333),
                                                      mode="bilinear")[0])
        yy, xx = torch.meshgrid(torch.arange(800.0), torch.arange(1333.0), indexing="ij")
        masks, labels = [], []
        for _ in range(20):
            cx, cy = torch.rand(2, generator=g) * torch.tensor([1233.0, 700.0]) + 50
            rx, ry = 16 + torch.rand(2, generator=g) * 150
            masks.append(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)
            labels.append(int(torch.randint(1, 81, (1,), generator=g)))
        targets.append(_masks_to_target(torch.stack(masks).numpy(), labels, voc_labels))
    return config, images, targets


WORKLOADS = {"small": small_workload, "coco": coco_workload}


@pytest.fixture(scope="module", params=list(WORKLOADS))
def workload(request):
    name = request.param
    config, images, targets = WORKLOADS[name]()
    # Inference keeps 100 detections per image whatever the random weights score.
    config = dataclasses.replace(config, box=dataclasses.replace(config.box, score_thresh=0.0))
    torch.manual_seed(0)
    models = {"maskx": MaskXRCNN(dataclasses.replace(config, ops="maskx"))}
    models["torchvision"] = MaskXRCNN(dataclasses.replace(config, ops="torchvision"))
    models["torchvision"].load_state_dict(models["maskx"].state_dict())
    return name, models, images, targets


def _train_step(model, images, targets):
    model.train()
    torch.manual_seed(1)
    losses = model(images, [dict(t) for t in targets])
    sum(losses.values()).backward()
    model.zero_grad(set_to_none=True)


@torch.inference_mode()
def _inference(model, images):
    model.eval()
    return model(images)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_model_train_step(benchmark, workload, impl):
    name, models, images, targets = workload
    benchmark.group = f"model {name} train step: 2 images"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(_train_step, args=(models[impl], images, targets), rounds=ROUNDS[name], warmup_rounds=1)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_model_inference(benchmark, workload, impl):
    name, models, images, _ = workload
    benchmark.group = f"model {name} inference: 2 images, 100 detections each"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(_inference, args=(models[impl], images), rounds=ROUNDS[name], warmup_rounds=1)


# -- the replaced parts, replayed -------------------------------------------------------

def _detached(value, grad: bool):
    if isinstance(value, torch.Tensor):
        value = value.detach().clone()
        return value.requires_grad_(grad and value.is_floating_point())
    if isinstance(value, dict):
        return {k: _detached(v, grad) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v, grad) for v in value)
    return value


class Recorder:
    """Records the inputs of every replaced operation during one model call."""

    def __init__(self, model: MaskXRCNN):
        self.calls: list[tuple[str, tuple, bool]] = []
        ops = model.roi_heads.ops
        wrapped = {f.name: self._wrap(f.name, getattr(ops, f.name))
                   for f in dataclasses.fields(DetectionOps) if f.name not in ("name", "pooler")}
        recording = dataclasses.replace(ops, **wrapped)
        model.rpn.ops = model.roi_heads.ops = model.transform.ops = recording
        branch = model.roi_heads.mask_branch
        branch.predictor.ops = recording
        if branch.predictor.kind == "transfer":
            branch.predictor.transfer.ops = recording
        self.handles = [
            module.register_forward_pre_hook(self._pooler_hook(name))
            for name, module in (("box_roi_pool", model.roi_heads.box_roi_pool),
                                 ("mask_roi_pool", model.roi_heads.mask_roi_pool))]
        self.poolers = {"box_roi_pool": model.roi_heads.box_roi_pool, "mask_roi_pool": model.roi_heads.mask_roi_pool}

    def _wrap(self, name, fn):
        def recorded(*args):
            self.calls.append((name, _detached(args, False), torch.is_grad_enabled()))
            return fn(*args)
        return recorded

    def _pooler_hook(self, name):
        def hook(module, args):
            self.calls.append((name, _detached(args, False), torch.is_grad_enabled()))
        return hook


def _prepared(calls, backward: bool) -> list:
    """Fresh copies of the recorded inputs (outside the timed region), with gradients
    where the call ran under autograd in a training step."""
    return [(name, _detached(args, backward and grad_enabled), backward and grad_enabled)
            for name, args, grad_enabled in calls]


def _replay(prepared, ops: DetectionOps, poolers: dict):
    """Run every prepared call on ``ops`` (and its poolers), with backward where training."""
    for name, args, backward in prepared:
        if name in poolers:
            out = poolers[name](*args)
        else:
            out = getattr(ops, name)(*args)
        if backward and isinstance(out, torch.Tensor) and out.requires_grad:
            out.backward(torch.ones_like(out) if out.dim() else None)


@pytest.fixture(scope="module")
def recorded(workload):
    name, models, images, targets = workload
    torch.manual_seed(0)
    model = MaskXRCNN(models["maskx"].config)
    model.load_state_dict(models["maskx"].state_dict())
    recorder = Recorder(model)
    model.train()
    torch.manual_seed(1)
    model(images, [dict(t) for t in targets])
    train_calls = recorder.calls
    recorder.calls = []
    with torch.inference_mode():
        model.eval()(images)
    # Pasting is timed on its own: it is not one of the parts the paper's model changes,
    # and at image size its cost is mostly the fresh memory of its output.
    inference_calls = [call for call in recorder.calls if call[0] != "paste_masks"]
    paste_calls = [call for call in recorder.calls if call[0] == "paste_masks"]
    config = model.config
    poolers = {}
    for impl, ops in (("maskx", MASKX_OPS), ("torchvision", TORCHVISION_OPS)):
        poolers[impl] = {
            "box_roi_pool": ops.pooler(["0", "1", "2", "3"], config.box.pool_size, config.box.sampling_ratio,
                                       config.aligned),
            "mask_roi_pool": ops.pooler(["0", "1", "2", "3"], config.mask.pool_size, config.mask.sampling_ratio,
                                        config.aligned),
        }
    return name, train_calls, inference_calls, paste_calls, poolers


_OPS = {"maskx": MASKX_OPS, "torchvision": TORCHVISION_OPS}


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_model_train_replaced_parts(benchmark, recorded, impl):
    name, train_calls, _, _, poolers = recorded
    benchmark.group = f"model {name} train step: replaced parts"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(_replay, setup=lambda: ((_prepared(train_calls, True), _OPS[impl], poolers[impl]), {}),
                       rounds=ROUNDS[name] + 2, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_model_inference_replaced_parts(benchmark, recorded, impl):
    name, _, inference_calls, _, poolers = recorded
    _time_inference_replay(benchmark, f"model {name} inference: replaced parts", impl, inference_calls,
                           poolers, ROUNDS[name] + 2)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_model_inference_mask_pasting(benchmark, recorded, impl):
    name, _, _, paste_calls, poolers = recorded
    _time_inference_replay(benchmark, f"model {name} inference: mask pasting (probabilities at image size)", impl,
                           paste_calls, poolers, ROUNDS[name] + 2)


def _time_inference_replay(benchmark, group, impl, calls, poolers, rounds):
    benchmark.group = group
    benchmark.extra_info["impl"] = impl

    def replay(prepared):
        with torch.inference_mode():
            _replay(prepared, _OPS[impl], poolers[impl])

    benchmark.pedantic(replay, setup=lambda: ((_prepared(calls, False),), {}), rounds=rounds, warmup_rounds=1)
