"""python -m benchmarks.accelerate [--rounds N] [--device cpu|cuda] [--masks probabilities|binary] [--threads N]:
torchvision's maskrcnn_resnet50_fpn inference, stock against
maskx_kernels.integrations.torchvision.accelerate, with the time of each part.

One process: a random-weight model (weights=None, weights_backbone=None,
box_score_thresh=0, so the image keeps its 100 detections) and an accelerated copy run
one 800x1333 image (random pixels) in turn, the order alternating between rounds, after
one warm-up run each. Timers around the model's modules and methods (forward hooks and
method wrappers, synchronised on a GPU) split each forward pass into the parts below; the
report gives each part's median over the rounds, marks the parts accelerate replaces
(pooling, RPN NMS, box post-processing, mask logits, pasting), and sums them. Each run's
output is released before the next run, as in a loop over images (maskx's pasted masks
then reuse the memory of the last ones; torchvision allocates its own every time).
"""
import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict

import torch
import torchvision
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.ops import boxes as tv_boxes

import maskx_kernels
import maskx_kernels.integrations.torchvision as mxtv

IMAGE = (800, 1333)

# (part, replaced by accelerate)
PARTS = [
    ("transform (normalise, resize)", False),
    ("backbone (ResNet-50 + FPN)", False),
    ("RPN head, anchors, decoding", False),
    ("RPN proposal top-k and clipping", False),
    ("RPN NMS", True),
    ("box RoI pooling", True),
    ("box head (FC layers)", False),
    ("box post-processing", True),
    ("mask RoI pooling", True),
    ("mask head (4 convs)", False),
    ("mask predictor deconv", False),
    ("mask logits (class channel, sigmoid)", True),
    ("mask pasting", True),
    ("other", False),
]


class Timers:
    """Seconds spent in named calls during one forward pass."""

    def __init__(self, device):
        self.device = device
        self.seconds = defaultdict(float)
        self.start = {}
        self.in_rpn = False  # inside the RPN's filter_proposals

    def now(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def hook_module(self, module, name):
        module.register_forward_pre_hook(lambda *_: self.start.__setitem__(name, self.now()))

        def done(*_):
            self.seconds[name] += self.now() - self.start.pop(name)

        module.register_forward_hook(done)

    def wrap(self, fn, name):
        def timed(*args, **kwargs):
            start = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += self.now() - start

        return timed

    def reset(self):
        self.seconds = defaultdict(float)


def instrument(model, timers):
    """Timers around the parts of one Mask R-CNN (stock or accelerated)."""
    heads = model.roi_heads
    timers.hook_module(model.backbone, "backbone")
    timers.hook_module(model.rpn, "rpn")
    timers.hook_module(heads.box_roi_pool, "box_pool")
    timers.hook_module(heads.box_head, "box_head")
    timers.hook_module(heads.box_predictor, "box_predictor")
    timers.hook_module(heads.mask_roi_pool, "mask_pool")
    timers.hook_module(heads.mask_head, "mask_head")
    timers.hook_module(heads.mask_predictor, "mask_predictor")
    timers.hook_module(heads.mask_predictor.conv5_mask, "deconv")
    timers.hook_module(heads.mask_predictor.relu, "deconv_relu")
    filter_proposals = timers.wrap(model.rpn.filter_proposals, "filter_proposals")

    def flagged_filter(*args, **kwargs):
        timers.in_rpn = True
        try:
            return filter_proposals(*args, **kwargs)
        finally:
            timers.in_rpn = False

    model.rpn.filter_proposals = flagged_filter
    heads.postprocess_detections = timers.wrap(heads.postprocess_detections, "postprocess")
    model.transform.postprocess = timers.wrap(model.transform.postprocess, "paste")
    transform_forward = model.transform.forward
    model.transform.forward = timers.wrap(transform_forward, "transform")


def breakdown(seconds, total, accelerated):
    s = seconds
    deconv = s["deconv"] + s["deconv_relu"]
    if accelerated:
        mask_logits = s["mask_probabilities"] - deconv
    else:
        mask_logits = s["mask_predictor"] - deconv + s["maskrcnn_inference"]
    parts = {
        "transform (normalise, resize)": s["transform"],
        "backbone (ResNet-50 + FPN)": s["backbone"],
        "RPN head, anchors, decoding": s["rpn"] - s["filter_proposals"],
        "RPN proposal top-k and clipping": s["filter_proposals"] - s["rpn_nms"],
        "RPN NMS": s["rpn_nms"],
        "box RoI pooling": s["box_pool"],
        "box head (FC layers)": s["box_head"] + s["box_predictor"],
        "box post-processing": s["postprocess"],
        "mask RoI pooling": s["mask_pool"],
        "mask head (4 convs)": s["mask_head"],
        "mask predictor deconv": deconv,
        "mask logits (class channel, sigmoid)": mask_logits,
        "mask pasting": s["paste"],
    }
    parts["other"] = total - sum(parts.values())
    return parts


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--masks", default="probabilities", choices=["probabilities", "binary"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    stock = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0
    ).eval().to(device)
    fast = mxtv.accelerate(copy.deepcopy(stock), masks=args.masks)
    image = torch.rand(3, *IMAGE, generator=torch.Generator().manual_seed(0)).to(device)

    timers = {"torchvision": Timers(device), "maskx": Timers(device)}
    instrument(stock, timers["torchvision"])
    instrument(fast, timers["maskx"])
    # Module-level functions the two RoIHeads call for the mask logits.
    current = {"name": None}
    inference = tv_roi_heads.maskrcnn_inference
    tv_roi_heads.maskrcnn_inference = lambda *a, **k: timers[current["name"]].wrap(inference, "maskrcnn_inference")(*a, **k)
    probabilities = mxtv.mask_probabilities
    mxtv.mask_probabilities = lambda *a, **k: timers[current["name"]].wrap(probabilities, "mask_probabilities")(*a, **k)
    # The batched NMS calls of the RPN's filter_proposals (torchvision's RoIHeads calls
    # torchvision's too, counted in its post-processing).
    for module in (tv_boxes, maskx_kernels):
        nms = module.batched_nms

        def rpn_timed(*a, _nms=nms, **k):
            t = timers[current["name"]]
            return t.wrap(_nms, "rpn_nms")(*a, **k) if t.in_rpn else _nms(*a, **k)

        module.batched_nms = rpn_timed

    models = {"torchvision": stock, "maskx": fast}
    results = {name: defaultdict(list) for name in models}
    labels = {}
    for r in range(args.rounds + 1):
        order = ["torchvision", "maskx"] if r % 2 == 0 else ["maskx", "torchvision"]
        for name in order:
            current["name"] = name
            t = timers[name]
            t.reset()
            with torch.no_grad():
                start = t.now()
                output = models[name]([image])[0]
                total = t.now() - start
            labels[name] = output["labels"]
            del output  # its masks' memory is free again for the next run
            if r == 0:
                continue  # warm-up
            for part, seconds in breakdown(t.seconds, total, name == "maskx").items():
                results[name][part].append(seconds)
            results[name]["forward"].append(total)
            print(f"round {r} {name}: {total * 1e3:.0f} ms", file=sys.stderr)

    median = {name: {part: statistics.median(v) for part, v in parts.items()} for name, parts in results.items()}
    rows = [["part", "replaced", "torchvision ms", "maskx ms", "speed-up"]]

    def row(label, replaced, a, b):
        rows.append([label, replaced, f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{a / b:.1f}x" if b > 0 else ""])

    for part, replaced in PARTS:
        row(part, "yes" if replaced else "", median["torchvision"][part], median["maskx"][part])
    replaced_parts = [p for p, r in PARTS if r]
    kept_parts = [p for p, r in PARTS if not r]
    for label, parts in (("parts accelerate replaces", replaced_parts), ("other parts", kept_parts)):
        row(label, "", *(sum(median[n][p] for p in parts) for n in ("torchvision", "maskx")))
    row("whole forward pass", "", median["torchvision"]["forward"], median["maskx"]["forward"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print(
        f"maskrcnn_resnet50_fpn (random weights, box_score_thresh=0), one {IMAGE[0]}x{IMAGE[1]} image, "
        f"{device.type}, {torch.get_num_threads()} threads, median of {args.rounds} rounds, masks={args.masks}"
    )
    print("\n".join(lines))
    same = torch.equal(labels["torchvision"], labels["maskx"])
    print(f"detections: {labels['torchvision'].shape[0]} stock, {labels['maskx'].shape[0]} accelerated, "
          f"same labels in the same order: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
