"""Mask^X R-CNN (maskx.model): every predictor variant on the maskx ops against the same
model on torchvision's ops, partial supervision, stop-gradient, weight loading."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torchvision

from maskx.model import MaskXRCNN, PredictorConfig, load_class_embedding, load_torchvision_weights

VARIANTS = {
    "class_agnostic": PredictorConfig(kind="class_agnostic"),
    "class_agnostic+mlp": PredictorConfig(kind="class_agnostic", mlp=True, mlp_layers=2, mlp_hidden=24),
    "class_specific": PredictorConfig(kind="class_specific"),
    "transfer cls+box 2-layer leaky": PredictorConfig(kind="transfer", transfer_hidden=12),
    "transfer cls 1-layer": PredictorConfig(kind="transfer", transfer_input="cls", transfer_layers=1),
    "transfer box 3-layer relu": PredictorConfig(kind="transfer", transfer_input="box", transfer_layers=3,
                                                 transfer_activation="relu", transfer_hidden=12),
    "transfer randn 2-layer none": PredictorConfig(kind="transfer", transfer_input="randn", randn_dim=20,
                                                   transfer_activation="none", transfer_hidden=12),
    "transfer+mlp no stop-grad": PredictorConfig(kind="transfer", mlp=True, stop_gradient=False, transfer_hidden=12),
}


def _pair(config):
    """The same weights on the maskx ops and on torchvision's."""
    torch.manual_seed(0)
    ours = MaskXRCNN(dataclasses.replace(config, ops="maskx"))
    theirs = MaskXRCNN(dataclasses.replace(config, ops="torchvision"))
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _batch(samples, count=2):
    images, targets = zip(*samples[1][:count])
    return list(images), [dict(t) for t in targets]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_training_losses_and_gradients_match_torchvision_ops(name, tiny_model_config, synthetic_samples):
    num_classes = synthetic_samples[0].category_map.num_classes
    ours, theirs = _pair(tiny_model_config(num_classes, predictor=VARIANTS[name]))
    images, targets = _batch(synthetic_samples)
    losses = {}
    for label, model in (("maskx", ours), ("torchvision", theirs)):
        model.train()
        torch.manual_seed(1)  # the same sampled anchors and RoIs
        loss_dict = model(images, copy.deepcopy(targets))
        sum(loss_dict.values()).backward()
        losses[label] = {k: v.item() for k, v in loss_dict.items()}
    assert set(losses["maskx"]) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                                    "loss_rpn_box_reg"}
    assert losses["maskx"]["loss_mask"] > 0
    for key in losses["maskx"]:
        assert losses["maskx"][key] == pytest.approx(losses["torchvision"][key], rel=1e-4, abs=1e-6), key
    mask_grads = 0
    for (param_name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        if p.grad is None:
            assert q.grad is None, param_name
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=2e-3, atol=2e-5, msg=param_name)
        mask_grads += "mask_branch" in param_name and bool(p.grad.abs().sum() > 0)
    assert mask_grads > 0, "the mask loss must reach the mask branch"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_detections_match_torchvision_ops(name, tiny_model_config, synthetic_samples):
    num_classes = synthetic_samples[0].category_map.num_classes
    ours, theirs = _pair(tiny_model_config(num_classes, predictor=VARIANTS[name]))
    images, _ = _batch(synthetic_samples)
    with torch.no_grad():
        mine = ours.eval()(images)
        reference = theirs.eval()(images)
    for a, b, image in zip(mine, reference, images):
        assert len(a["boxes"]) > 0
        torch.testing.assert_close(a["boxes"], b["boxes"], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(a["scores"], b["scores"], rtol=1e-4, atol=1e-6)
        assert torch.equal(a["labels"], b["labels"])
        assert a["masks"].shape == (len(a["boxes"]), 1, *image.shape[-2:])
        # Masks thresholded at 0.5 agree but for pixels right at the threshold.
        disagree = ((a["masks"] > 0.5) != (b["masks"] > 0.5)).float().mean()
        assert disagree < 1e-3


@pytest.mark.parametrize("aligned", [False, True])
def test_aligned_pooling_matches_torchvision_ops(aligned, tiny_model_config, synthetic_samples):
    num_classes = synthetic_samples[0].category_map.num_classes
    ours, theirs = _pair(tiny_model_config(num_classes, aligned=aligned))
    images, _ = _batch(synthetic_samples)
    with torch.no_grad():
        a, b = ours.eval()(images)[0], theirs.eval()(images)[0]
    torch.testing.assert_close(a["scores"], b["scores"], rtol=1e-4, atol=1e-6)
    assert ours.roi_heads.box_roi_pool.aligned is aligned and theirs.roi_heads.box_roi_pool.aligned is aligned


def _mask_loss(model, images, targets, seed=3):
    model.train()
    torch.manual_seed(seed)
    return model(images, copy.deepcopy(targets))["loss_mask"]


def test_mask_loss_ignores_set_b_instances(tiny_model_config, synthetic_samples):
    dataset, _ = synthetic_samples
    torch.manual_seed(0)
    model = MaskXRCNN(tiny_model_config(dataset.category_map.num_classes))
    images, targets = _batch(synthetic_samples)
    assert any(t["has_mask"].any() and (~t["has_mask"]).any() for t in targets), "need A and B instances"
    reference = _mask_loss(model, images, targets)
    # Give every set-B instance a full mask: the loss must not see it.
    edited = copy.deepcopy(targets)
    for t in edited:
        t["masks"][~t["has_mask"]] = 1
    assert _mask_loss(model, images, edited).item() == reference.item()
    # Changing a set-A instance's mask does change it.
    for t in edited:
        t["masks"][t["has_mask"]] = 1 - t["masks"][t["has_mask"]]
    assert _mask_loss(model, images, edited).item() != reference.item()
    # With no instance in set A there is no mask loss, and it still backpropagates.
    no_masks = copy.deepcopy(targets)
    for t in no_masks:
        t["has_mask"][:] = False
    loss = _mask_loss(model, images, no_masks)
    assert loss.item() == 0.0
    loss.backward()


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_stop_gradient_keeps_the_mask_loss_off_the_detection_weights(stop_gradient, tiny_model_config,
                                                                     synthetic_samples):
    dataset, _ = synthetic_samples
    torch.manual_seed(0)
    predictor = PredictorConfig(kind="transfer", stop_gradient=stop_gradient)
    model = MaskXRCNN(tiny_model_config(dataset.category_map.num_classes, predictor=predictor))
    images, targets = _batch(synthetic_samples)
    _mask_loss(model, images, targets).backward()
    box_predictor = model.roi_heads.box_predictor
    for weight in (box_predictor.cls_score.weight, box_predictor.bbox_pred.weight):
        if stop_gradient:
            assert weight.grad is None or not weight.grad.any()
        else:
            assert weight.grad is not None and weight.grad.abs().sum() > 0
    transfer = model.roi_heads.mask_branch.predictor.transfer
    assert all(layer.weight.grad.abs().sum() > 0 for layer in transfer.layers)


def test_inference_computes_one_mask_channel_per_detection(tiny_model_config, synthetic_samples, monkeypatch):
    """At inference the predictor never forms C mask channels per RoI."""
    import maskx_kernels

    dataset, _ = synthetic_samples
    torch.manual_seed(0)
    model = MaskXRCNN(tiny_model_config(dataset.category_map.num_classes)).eval()
    calls = []
    original = maskx_kernels.per_class_mask_logits

    def spy(features, weights, classes, *args):
        calls.append((features.shape, weights.shape, classes.shape))
        return original(features, weights, classes, *args)

    monkeypatch.setattr(model.roi_heads.mask_branch.predictor, "ops",
                        dataclasses.replace(model.roi_heads.mask_branch.predictor.ops, mask_logits=spy))
    images, _ = _batch(synthetic_samples)
    with torch.no_grad():
        detections = model(images)
    (features_shape, weights_shape, classes_shape), = calls
    assert classes_shape[0] == sum(len(d["boxes"]) for d in detections) == features_shape[0]
    assert weights_shape[0] == dataset.category_map.num_classes


def test_randn_rows_have_the_scale_of_detection_rows():
    """The 'randn' input rows are fixed, the same for every build, and of about unit norm,
    as the detection-weight rows are (unscaled N(0, 1) rows of norm sqrt(dim) made T's
    output weights blow up, and the head learned no masks)."""
    from maskx.model.ops import MASKX_OPS
    from maskx.model.weight_transfer import WeightTransfer

    config = PredictorConfig(kind="transfer", transfer_input="randn", randn_dim=1024)
    first = WeightTransfer(config, 25, 256, 64, MASKX_OPS).embedding
    second = WeightTransfer(config, 25, 256, 64, MASKX_OPS).embedding
    assert torch.equal(first, second)
    norms = first.norm(dim=1)
    assert bool(((norms > 0.85) & (norms < 1.15)).all()), norms
    assert first.std() > 0


def test_class_embedding_files(tmp_path):
    names = ["traffic light", "dog", "hot dog"]
    glove = tmp_path / "vectors.txt"
    glove.write_text("traffic 1 2 3\nlight 3 2 1\ndog 0 1 0\nhot 2 2 2\ncat 9 9 9\n")
    table = load_class_embedding(glove, 4, names)
    assert table.shape == (4, 3)
    assert table[0].tolist() == [0, 0, 0]
    assert table[1].tolist() == [2, 2, 2] and table[3].tolist() == [1, 1.5, 1]
    np.save(tmp_path / "rows.npy", np.arange(9, dtype=np.float32).reshape(3, 3))
    assert load_class_embedding(tmp_path / "rows.npy", 4).shape == (4, 3)
    with pytest.raises(ValueError, match="no vector for"):
        load_class_embedding(glove, 3, ["dog", "zebra"])
    with pytest.raises(ValueError, match="rows"):
        load_class_embedding(tmp_path / "rows.npy", 9)
    np.save(tmp_path / "nan.npy", np.full((3, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        load_class_embedding(tmp_path / "nan.npy", 4)


def test_embedding_predictor_uses_the_file_rows(tiny_model_config, synthetic_samples, tmp_path):
    dataset, _ = synthetic_samples
    num_classes = dataset.category_map.num_classes
    rows = np.random.default_rng(0).standard_normal((num_classes - 1, 5)).astype(np.float32)
    np.save(tmp_path / "embedding.npy", rows)
    embedding = load_class_embedding(tmp_path / "embedding.npy", num_classes)
    config = tiny_model_config(num_classes, predictor=PredictorConfig(
        kind="transfer", transfer_input="embedding", embedding_file=str(tmp_path / "embedding.npy")))
    model = MaskXRCNN(config, embedding=embedding)
    transfer = model.roi_heads.mask_branch.predictor.transfer
    assert torch.equal(transfer.inputs(model.roi_heads.box_predictor)[1:], torch.from_numpy(rows))
    with pytest.raises(ValueError, match="rows"):
        MaskXRCNN(config, embedding=embedding[:3])


def test_torchvision_mask_rcnn_weights_give_torchvision_detections():
    """A torchvision maskrcnn_resnet50_fpn state dict loaded into the COCO configuration
    with a class-specific predictor gives torchvision's detections."""
    from maskx.model import ModelConfig

    torch.manual_seed(0)
    # As torchvision builds a pretrained maskrcnn_resnet50_fpn: frozen BatchNorm, 3 stages trained.
    backbone = torchvision.models.detection.backbone_utils.resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=torchvision.ops.FrozenBatchNorm2d, trainable_layers=3)
    reference = torchvision.models.detection.MaskRCNN(
        backbone, num_classes=5, min_size=128, max_size=160, box_score_thresh=0.0,
        box_detections_per_img=30).eval().requires_grad_(False)
    for module in reference.modules():  # random, non-trivial normalisation statistics
        if isinstance(module, torchvision.ops.FrozenBatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.5, 1.5)
    config = ModelConfig(num_classes=5, min_size=(128,), max_size=160,
                         box=dataclasses.replace(ModelConfig().box, score_thresh=0.0, detections_per_image=30),
                         predictor=PredictorConfig(kind="class_specific"))
    images = [torch.rand(3, 120, 150, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        expected = reference(images)
    for ops in ("torchvision", "maskx"):
        model = MaskXRCNN(dataclasses.replace(config, ops=ops)).eval()
        report = load_torchvision_weights(model, reference.state_dict())
        assert not report.skipped and not report.not_provided, report.summary()
        with torch.no_grad():
            ours = model(images)
        for a, b in zip(ours, expected):
            assert len(a["boxes"]) == len(b["boxes"]) > 0
            torch.testing.assert_close(a["boxes"], b["boxes"], rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(a["scores"], b["scores"], rtol=1e-4, atol=1e-6)
            assert torch.equal(a["labels"], b["labels"])
            assert ((a["masks"] > 0.5) != (b["masks"] > 0.5)).float().mean() < 1e-3


def test_torchvision_weights_of_another_class_count_load_the_rest(tiny_model_config):
    from maskx.model import ModelConfig

    torch.manual_seed(0)
    reference = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                   num_classes=91)
    model = MaskXRCNN(ModelConfig(num_classes=5))
    report = load_torchvision_weights(model, reference.state_dict())
    assert "roi_heads.box_predictor.cls_score.weight" in report.skipped
    assert "roi_heads.mask_predictor.mask_fcn_logits.weight" in report.skipped
    assert "backbone.body.layer4.2.conv3.weight" in report.loaded
    assert "roi_heads.mask_branch.head.conv5_mask.weight" in report.loaded
    assert any("transfer" in name for name in report.not_provided)
    torch.testing.assert_close(model.backbone.body.layer1[0].conv1.weight,
                               reference.backbone.body.layer1[0].conv1.weight)


def test_imagenet_backbone_weights_from_a_file(tmp_path):
    from maskx.model import BackboneConfig, ModelConfig

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    config = ModelConfig(num_classes=3, backbone=BackboneConfig(depth=18, weights=str(tmp_path / "resnet18.pth")))
    model = MaskXRCNN(config)
    torch.testing.assert_close(model.backbone.body.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
    torch.testing.assert_close(model.backbone.body.bn1.running_var, resnet.bn1.running_var)
    # torchvision's rule: three trainable stages leave the stem, layer1 and their norms frozen.
    assert not model.backbone.body.conv1.weight.requires_grad and not model.backbone.body.layer1[0].conv1.weight.requires_grad
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad
    x = torch.rand(1, 3, 64, 64)
    model.backbone.body.eval()
    resnet.eval()
    with torch.no_grad():
        expected = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))))))
        torch.testing.assert_close(model.backbone.body(x)["3"], expected)
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(ValueError, match="not a state dict of this ResNet body"):
        MaskXRCNN(dataclasses.replace(config, backbone=BackboneConfig(depth=18, weights=str(tmp_path / "resnet34.pth"))))
    with pytest.raises(ValueError, match="file not found"):
        MaskXRCNN(dataclasses.replace(config, backbone=BackboneConfig(depth=18, weights=str(tmp_path / "none.pth"))))
    with pytest.raises(ValueError, match="width 1.0 only"):
        MaskXRCNN(dataclasses.replace(config, backbone=BackboneConfig(depth=18, width=0.5,
                                                                      weights=str(tmp_path / "resnet18.pth"))))
