"""Shared test conventions and data fixtures.

Conventions (import the helpers with ``from conftest import ...``; pytest puts tests/ on
the path, see pyproject.toml):

- ``@pytest.mark.needs_cuda``: the test needs a CUDA device and is skipped without one.
  ``@pytest.mark.parametrize("device", cpu_and_cuda())`` runs a test on the CPU and, where
  there is one, on a CUDA device.
- ``pytestmark = pytest.mark.triton``: the module runs Triton kernels, on ``TRITON_DEVICE``:
  on the CPU through the Triton interpreter when TRITON_INTERPRET=1 (set before anything
  imports triton; ``make test`` does), otherwise on a GPU; skipped with neither.
- The ``deterministic`` fixture runs a test with torch's deterministic algorithms off
  ("atomic") and on ("deterministic"); ``deterministic_algorithms(mode)`` sets them for a
  block.
- ``assert_same_gradients(fn, expected_fn, inputs)`` compares two differentiable paths
  (e.g. torch.compile against eager, Triton against native) on copies of the inputs.
- Every test starts from the same global random state (an autouse fixture seeds torch,
  NumPy and ``random``); a test that needs other draws seeds its own generator.

Data fixtures: a small generated synthetic set and a hand-written COCO file.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from maskx.data.synthetic import generate_dataset

CUDA_AVAILABLE = torch.cuda.is_available()
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
TRITON_DEVICE = "cpu" if TRITON_INTERPRET else "cuda"


def cpu_and_cuda():
    """Devices to parametrize a test over: the CUDA one is marked needs_cuda."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda))


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    skip_triton = pytest.mark.skip(reason="needs TRITON_INTERPRET=1 or a CUDA device")
    for item in items:
        if not CUDA_AVAILABLE and item.get_closest_marker("needs_cuda") is not None:
            item.add_marker(skip_cuda)
        if not (TRITON_INTERPRET or CUDA_AVAILABLE) and item.get_closest_marker("triton") is not None:
            item.add_marker(skip_triton)


@pytest.fixture(autouse=True)
def _same_random_state_for_every_test():
    """Every test starts from the same global random state (torch, NumPy, random), so a
    test draws the same inputs alone as in the suite, and a failure reproduces."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@contextlib.contextmanager
def deterministic_algorithms(mode: bool):
    """torch.use_deterministic_algorithms(mode) for a block, restored after it."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(mode)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def assert_same_gradients(fn, expected_fn, inputs, seed: int = 0):
    """fn(*inputs) and expected_fn(*inputs) agree, and so do their gradients with respect
    to every input, for one random output gradient. Each runs on its own copies of the
    inputs (leaves requiring grad)."""
    runs = []
    for f in (fn, expected_fn):
        leaves = [x.detach().clone().requires_grad_() for x in inputs]
        out = f(*leaves)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype).to(out.device)
        out.backward(grad)
        runs.append((out.detach(), [x.grad for x in leaves]))
    (out, grads), (expected, expected_grads) = runs
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.fixture(params=[False, True], ids=["atomic", "deterministic"])
def deterministic(request):
    """Runs the test with deterministic algorithms off, then on; the value is the mode."""
    with deterministic_algorithms(request.param):
        yield request.param


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A few synthetic images per subset, generated once per test session."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_train=6, num_val=5, seed=11)
    return root


def _triangle_rle(height: int, width: int) -> dict:
    yy, xx = np.mgrid[0:height, 0:width]
    mask = ((xx >= 20) & (xx < 36) & (yy >= 8) & (yy < 24) & (xx - 20 <= yy - 8)).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


@dataclass
class TinyCoco:
    """A hand-written COCO file: polygons, compressed and uncompressed RLE, a crowd
    region, a box-only annotation and an image whose only annotation is crowd."""

    image_dir: Path
    annotation_file: Path
    data: dict

    def write(self, data: dict, name: str = "instances_edited.json") -> Path:
        path = self.annotation_file.with_name(name)
        path.write_text(json.dumps(data))
        return path

    def edited(self) -> dict:
        return copy.deepcopy(self.data)


@pytest.fixture
def tiny_coco(tmp_path) -> TinyCoco:
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    rng = np.random.default_rng(0)
    images = [
        {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 2, "file_name": "b.png", "width": 32, "height": 32},
        {"id": 3, "file_name": "c.png", "width": 24, "height": 20},
    ]
    for image in images:
        pixels = rng.integers(0, 256, (image["height"], image["width"], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / image["file_name"])
    triangle = _triangle_rle(30, 40)
    crowd_mask = np.zeros((20, 24), dtype=np.uint8)
    crowd_mask[4:12, 6:18] = 1
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
         "bbox": [5.0, 5.0, 10.0, 10.0], "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
        {"id": 11, "image_id": 1, "category_id": 2, "iscrowd": 0,
         "area": float(mask_utils.area(triangle)),
         "bbox": [float(v) for v in mask_utils.toBbox(triangle)], "segmentation": triangle},
        {"id": 12, "image_id": 3, "category_id": 3, "iscrowd": 1, "area": 96.0,
         "bbox": [6.0, 4.0, 12.0, 8.0], "segmentation": _uncompressed_rle(crowd_mask)},
        {"id": 13, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 80.0,
         "bbox": [2.0, 3.0, 10.0, 8.0]},
        {"id": 14, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 120.0,
         "bbox": [14.0, 10.0, 12.0, 10.0],
         "segmentation": [[14, 10, 26, 10, 26, 20, 14, 20]]},
    ]
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"},
                       {"id": 3, "name": "blob"}],
    }
    annotation_file = tmp_path / "instances_tiny.json"
    annotation_file.write_text(json.dumps(data))
    return TinyCoco(image_dir, annotation_file, data)


@pytest.fixture(scope="session")
def synthetic_samples(synthetic_root):
    """A few training images and targets of the synthetic set (split 'synthetic')."""
    from maskx.data import CocoInstanceDataset, coco_layout

    dataset = CocoInstanceDataset(*coco_layout(synthetic_root, "train"), split="synthetic")
    return dataset, [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="session")
def tiny_model_config():
    """A factory of tiny Mask^X R-CNN configurations (fast on a CPU), keyword overrides
    replacing top-level fields."""
    import dataclasses

    from maskx.model import BackboneConfig, BoxHeadConfig, MaskHeadConfig, ModelConfig, RPNConfig

    def make(num_classes: int, **overrides) -> ModelConfig:
        config = ModelConfig(
            num_classes=num_classes, min_size=(160,), max_size=256,
            backbone=BackboneConfig(depth=18, width=0.25, norm="gn", trainable_stages=5, fpn_channels=16),
            rpn=RPNConfig(anchor_sizes=(8, 16, 32, 64, 128), pre_nms_top_n_train=200, post_nms_top_n_train=100,
                          pre_nms_top_n_test=150, post_nms_top_n_test=60, batch_size_per_image=64),
            # score_thresh 0: a random-weight model keeps its detections (scores near 1/C).
            box=BoxHeadConfig(representation_size=32, batch_size_per_image=48, score_thresh=0.0,
                              detections_per_image=20),
            mask=MaskHeadConfig(pool_size=7, conv_layers=2, channels=8))
        return dataclasses.replace(config, **overrides)

    return make
