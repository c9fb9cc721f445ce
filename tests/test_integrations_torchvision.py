"""maskx_kernels.integrations.torchvision.accelerate: the accelerated detector's outputs
equal the stock model's (every detector kind and backbone torchvision builds, random
weights, and a briefly trained Mask R-CNN), in eval and training mode and under
torch.compile; undo, repeat and bad input."""
import copy

import numpy as np
import pytest
import torch
import torchvision
from pycocotools import mask as mask_utils
from torchvision.models import detection
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

import maskx_kernels
import maskx_kernels.integrations.torchvision as mxtv
from maskx.data.synthetic.generator import SceneConfig, render_scene

# Small images and fewer proposals keep the models fast; box_score_thresh=0 keeps every
# image's detections at box_detections_per_img.
SMALL = dict(min_size=128, max_size=176, rpn_pre_nms_top_n_test=400, rpn_post_nms_top_n_test=200,
             box_score_thresh=0.0)

BUILDERS = {
    "fasterrcnn_resnet50_fpn": (detection.fasterrcnn_resnet50_fpn, {}),
    "fasterrcnn_resnet50_fpn_v2": (detection.fasterrcnn_resnet50_fpn_v2, {}),
    "fasterrcnn_mobilenet_v3_large_fpn": (detection.fasterrcnn_mobilenet_v3_large_fpn, {}),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (detection.fasterrcnn_mobilenet_v3_large_320_fpn, {}),
    "maskrcnn_resnet50_fpn": (detection.maskrcnn_resnet50_fpn, {}),
    "maskrcnn_resnet50_fpn_v2": (detection.maskrcnn_resnet50_fpn_v2, {}),
    # The keypoint head (eight 512-channel convolutions per RoI) is slow on a CPU: 20 detections.
    "keypointrcnn_resnet50_fpn": (detection.keypointrcnn_resnet50_fpn, {"box_detections_per_img": 20}),
}


def build(name, seed=0, **overrides):
    builder, extra = BUILDERS[name]
    torch.manual_seed(seed)
    return builder(weights=None, weights_backbone=None, **{**SMALL, **extra, **overrides}).eval()


def images(seed=0, sizes=((120, 160), (100, 150))):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g) for h, w in sizes]


def run(model, inputs):
    with torch.no_grad():
        return model([x.clone() for x in inputs])


def close(a, b, rtol, atol):
    return bool(((a - b).abs() <= atol + rtol * b.abs()).all())


def matched_detections(s, o, rtol=1e-4):
    """Pairs (i, j) of stock detection i and accelerated detection j with the same label,
    boxes and scores to float32 rounding (maskx pools in another summation order, and
    the v2 box head's four convolutions carry that rounding up to about 2e-5 relative).
    Detections whose scores differ by rounding only may come in the other order, and at
    the top-k cut one may take the other's place; nothing else may differ."""
    pairs, taken = [], set()
    for i in range(s["labels"].shape[0]):
        candidates = [
            j for j in range(o["labels"].shape[0])
            if j not in taken and int(o["labels"][j]) == int(s["labels"][i])
            and close(o["scores"][j], s["scores"][i], rtol, 1e-7) and close(o["boxes"][j], s["boxes"][i], rtol, 1e-3)
        ]
        if candidates:
            j = min(candidates, key=lambda j: abs(j - i))
            taken.add(j)
            pairs.append((i, j))
    lowest = float(s["scores"].min()) if s["scores"].numel() else 0.0
    unmatched = [i for i in range(s["labels"].shape[0]) if i not in {p[0] for p in pairs}]
    assert all(float(s["scores"][i]) <= lowest * (1 + 10 * rtol) for i in unmatched), unmatched
    assert len(pairs) >= s["labels"].shape[0] - 2
    assert len(pairs) >= o["labels"].shape[0] - 2
    return pairs


def assert_same_detections(stock, ours, expected_count=None):
    """Same detections (see matched_detections), the same mask pixels at 0.5 except
    pixels within rounding of it (the mask head carries the pooling's rounding; with
    random weights many probabilities lie near 0.5), and keypoints to rounding."""
    assert len(stock) == len(ours)
    for s, o in zip(stock, ours):
        assert set(s) == set(o)
        if expected_count is not None:
            assert s["labels"].shape[0] == expected_count
        assert o["labels"].shape == s["labels"].shape
        pairs = matched_detections(s, o)
        si = torch.tensor([p[0] for p in pairs], dtype=torch.long)
        oi = torch.tensor([p[1] for p in pairs], dtype=torch.long)
        if "masks" in s:
            assert o["masks"].shape == s["masks"].shape and o["masks"].dtype == s["masks"].dtype
            sm, om = s["masks"][si], o["masks"][oi]
            torch.testing.assert_close(om, sm, rtol=0, atol=1e-3)
            settled = (sm - 0.5).abs() > 1e-4
            assert torch.equal((om > 0.5)[settled], (sm > 0.5)[settled])
        if "keypoints" in s:
            torch.testing.assert_close(o["keypoints"][oi], s["keypoints"][si], rtol=1e-4, atol=1e-2)
            torch.testing.assert_close(o["keypoints_scores"][oi], s["keypoints_scores"][si], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_same_detections_as_torchvision(name):
    stock = build(name)
    inputs = images(sizes=((120, 160), (100, 150)) if name == "maskrcnn_resnet50_fpn" else ((110, 150),))
    expected = run(stock, inputs)
    model = mxtv.accelerate(copy.deepcopy(stock))
    assert mxtv.is_accelerated(model)
    assert isinstance(model.roi_heads.box_roi_pool, maskx_kernels.MultiScaleRoIAlign)
    assert_same_detections(expected, run(model, inputs), BUILDERS[name][1].get("box_detections_per_img", 100))


def test_replaced_parts_and_state_dict():
    stock = build("maskrcnn_resnet50_fpn")
    model = mxtv.accelerate(copy.deepcopy(stock))
    heads = model.roi_heads
    for pooler in (heads.box_roi_pool, heads.mask_roi_pool):
        assert type(pooler) is mxtv.TorchvisionMultiScaleRoIAlign
    assert heads.box_roi_pool.output_size == (7, 7) and heads.mask_roi_pool.output_size == (14, 14)
    assert heads.box_roi_pool.sampling_ratio == 2
    assert isinstance(heads, detection.roi_heads.RoIHeads) and type(heads) is not detection.roi_heads.RoIHeads
    assert isinstance(model.rpn, detection.rpn.RegionProposalNetwork)
    assert isinstance(model.transform, detection.transform.GeneralizedRCNNTransform)
    assert list(model.state_dict()) == list(stock.state_dict())


def scenes(count, seed, num_classes):
    """Tiny synthetic images with their instances' boxes, labels and masks."""
    rng = np.random.default_rng(seed)
    config = SceneConfig(min_image_size=96, max_image_size=128, min_objects=2, max_objects=4)
    inputs, targets = [], []
    for _ in range(count):
        scene = render_scene(rng, config)
        masks = torch.from_numpy(np.ascontiguousarray(scene.masks.transpose(2, 0, 1))).to(torch.uint8)
        boxes = []
        for m in masks:
            ys, xs = torch.nonzero(m, as_tuple=True)
            boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1.0, ys.max().item() + 1.0])
        labels = torch.tensor([1 + c % (num_classes - 1) for c in scene.category_ids], dtype=torch.int64)
        inputs.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
        targets.append({"boxes": torch.tensor(boxes), "labels": labels, "masks": masks})
    return inputs, targets


@pytest.fixture(scope="module")
def trained_model():
    """A small Mask R-CNN (ResNet-18 FPN, 4 classes) after a few SGD steps on tiny
    synthetic scenes (real boxes and masks), so its scores are no longer those of random
    weights. Returns (model in eval mode, images, the loss of every step)."""
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    model = detection.MaskRCNN(backbone, num_classes=4, min_size=80, max_size=112, box_batch_size_per_image=32,
                               rpn_batch_size_per_image=64, box_score_thresh=0.0, rpn_post_nms_top_n_test=200)
    inputs, targets = scenes(4, seed=1, num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = []
    for step in range(4):
        batch = [0, 1] if step % 2 == 0 else [2, 3]
        loss = sum(model([inputs[i] for i in batch], [targets[i] for i in batch]).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    return model.eval(), inputs, losses


def test_trained_model(trained_model):
    stock, inputs, losses = trained_model
    assert losses[2] < losses[0]  # the same images, two steps apart
    expected = run(stock, inputs[:2])
    scores = torch.cat([e["scores"] for e in expected])
    assert float(scores.std()) > 1e-3
    with mxtv.accelerated(stock) as model:
        ours = run(model, inputs[:2])
    assert_same_detections(expected, ours, 100)


def test_torch_compile(trained_model):
    stock, inputs, _ = trained_model
    expected = run(stock, inputs[2:3])
    model = mxtv.accelerate(copy.deepcopy(stock))
    compiled = torch.compile(model, backend="eager")
    assert_same_detections(expected, run(compiled, inputs[2:3]), 100)


def small_copy(model, detections):
    """A copy of the trained model that keeps `detections` per image (faster)."""
    model = copy.deepcopy(model)
    model.roi_heads.detections_per_img = detections
    return model


def test_accelerate_twice_restore_and_context_manager(trained_model):
    stock, inputs, _ = trained_model
    stock = small_copy(stock, 20)
    expected = run(stock, inputs[:1])
    model = copy.deepcopy(stock)
    assert mxtv.accelerate(mxtv.accelerate(model)) is model
    assert type(model.roi_heads.box_roi_pool) is mxtv.TorchvisionMultiScaleRoIAlign
    assert_same_detections(expected, run(model, inputs[:1]), 20)
    assert mxtv.restore(model) is model and not mxtv.is_accelerated(model)
    assert type(model.roi_heads) is detection.roi_heads.RoIHeads
    assert type(model.rpn) is detection.rpn.RegionProposalNetwork
    assert type(model.transform) is detection.transform.GeneralizedRCNNTransform
    assert type(model.roi_heads.mask_roi_pool) is torchvision.ops.MultiScaleRoIAlign
    for s, r in zip(expected, run(model, inputs[:1])):
        for key in s:
            assert torch.equal(s[key], r[key])
    assert mxtv.restore(model) is model  # harmless on a stock model
    with mxtv.accelerated(model) as inside:
        assert inside is model and mxtv.is_accelerated(model)
        assert_same_detections(expected, run(model, inputs[:1]), 20)
    assert not mxtv.is_accelerated(model)
    mxtv.accelerate(model)
    with mxtv.accelerated(model):
        pass
    assert mxtv.is_accelerated(model)  # it was accelerated before the block


def test_binary_and_rle_masks(trained_model):
    stock, inputs, _ = trained_model
    stock = small_copy(stock, 30)
    expected = run(stock, inputs[1:2])[0]["masks"]
    model = mxtv.accelerate(copy.deepcopy(stock), masks="binary")
    binary = run(model, inputs[1:2])[0]["masks"]
    assert binary.dtype == torch.bool and binary.shape == expected.shape
    settled = (expected - 0.5).abs() > 1e-4
    assert torch.equal(binary[settled], (expected > 0.5)[settled])
    assert bool(binary.any())
    mxtv.accelerate(model, masks="rle", mask_threshold=0.5)
    rles = run(model, inputs[1:2])[0]["masks"]
    assert rles == [mask_utils.encode(np.asfortranarray(m[0].numpy().astype(np.uint8))) for m in binary]
    mxtv.accelerate(model)
    assert run(model, inputs[1:2])[0]["masks"].dtype == torch.float32


def test_no_detections(trained_model):
    stock, inputs, _ = trained_model
    stock = copy.deepcopy(stock)
    stock.roi_heads.score_thresh = 0.999
    expected = run(stock, inputs[:1])
    assert expected[0]["boxes"].shape[0] == 0
    ours = run(mxtv.accelerate(stock), inputs[:1])
    height, width = inputs[0].shape[1:]
    assert ours[0]["masks"].shape == (0, 1, height, width) and ours[0]["boxes"].shape == (0, 4)


def test_training_mode_losses_and_gradients():
    torch.manual_seed(1)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    stock = detection.MaskRCNN(backbone, num_classes=4, min_size=80, max_size=112, box_batch_size_per_image=32).train()
    model = mxtv.accelerate(copy.deepcopy(stock)).train()
    inputs, targets = scenes(2, seed=3, num_classes=4)
    losses = []
    for m in (stock, model):
        torch.manual_seed(5)  # the same proposal sampling
        loss = m([x.clone() for x in inputs], copy.deepcopy(targets))
        sum(loss.values()).backward()
        losses.append(loss)
    assert set(losses[0]) == set(losses[1])
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-4, atol=1e-6)
    for name in ("roi_heads.box_head.fc6.weight", "roi_heads.mask_head.0.0.weight", "backbone.fpn.layer_blocks.0.0.weight"):
        grad, expected = dict(model.named_parameters())[name].grad, dict(stock.named_parameters())[name].grad
        torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))


def test_mobilenet_pooler_uses_the_maps_present():
    """torchvision's MobileNet detectors name maps "0".."3" but get "0", "1" and "pool"."""
    pooler = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    ours = mxtv.TorchvisionMultiScaleRoIAlign.from_torchvision(pooler)
    g = torch.Generator().manual_seed(0)
    x = {"0": torch.randn(1, 8, 20, 20, generator=g), "1": torch.randn(1, 8, 10, 10, generator=g),
         "pool": torch.randn(1, 8, 5, 5, generator=g)}
    boxes = [torch.tensor([[1.0, 2.0, 30.0, 40.0], [10.0, 10.0, 300.0, 300.0], [5.0, 5.0, 9.0, 9.0]])]
    torch.testing.assert_close(ours(x, boxes, [(320, 320)]), pooler(x, boxes, [(320, 320)]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "model",
    [
        torch.nn.Linear(2, 2),
        detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None),
    ],
    ids=["linear", "retinanet"],
)
def test_unknown_model(model):
    with pytest.raises(TypeError, match="expected a torchvision FasterRCNN, MaskRCNN or KeypointRCNN"):
        mxtv.accelerate(model)


def test_compiled_model_and_bad_options():
    model = build("fasterrcnn_mobilenet_v3_large_320_fpn")
    with pytest.raises(TypeError, match="accelerate the model first"):
        mxtv.accelerate(torch.compile(model))
    with pytest.raises(ValueError, match="masks must be one of"):
        mxtv.accelerate(model, masks="polygons")
    with pytest.raises(ValueError, match="mask_threshold must be finite"):
        mxtv.accelerate(model, mask_threshold=float("nan"))
    assert not mxtv.is_accelerated(model)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("name", ["maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"])
def test_same_detections_on_cuda(name):
    stock = build(name).cuda()
    inputs = [x.cuda() for x in images()]
    expected = run(stock, inputs)
    ours = run(mxtv.accelerate(copy.deepcopy(stock)), inputs)
    assert_same_detections(expected, ours, BUILDERS[name][1].get("box_detections_per_img", 100))
