"""Plain-PyTorch detection post-processing: the readable spec of maskx_kernels.multiclass_nms.

torchvision's postprocess_detections recipe: every (row, class) entry with a score above
the threshold is a candidate carrying that class's box (or the row's shared box); the
candidates, in row-major order, go through per-class NMS (reference.batched_nms); the
first max_detections survivors are the result.
"""

from torch import Tensor

from maskx_kernels.reference.batched_nms import batched_nms


def multiclass_nms(
    boxes: Tensor, scores: Tensor, score_threshold: float, iou_threshold: float, max_detections: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    num_classes = scores.shape[1]
    flat_scores = scores.reshape(-1)
    candidates = (flat_scores.double() > score_threshold).nonzero()[:, 0]
    rows = candidates.div(num_classes, rounding_mode="floor")
    labels = candidates.remainder(num_classes)
    cand_boxes = boxes[rows, labels] if boxes.dim() == 3 else boxes[rows]
    cand_scores = flat_scores[candidates]
    keep = batched_nms(cand_boxes, cand_scores, labels, iou_threshold)[:max_detections]
    return cand_boxes[keep], cand_scores[keep], labels[keep], rows[keep]
