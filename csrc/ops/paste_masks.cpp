// Schema of maskx::paste_masks and maskx::paste_masks_rle: [N, M_h, M_w] mask
// probabilities pasted into an image of height x width at their boxes, the way
// torchvision's paste_masks_in_image does (geometry and arithmetic in
// ops/paste_masks_common.h). paste_masks returns [N, height, width]: probabilities in the
// masks' dtype, or bool (value > threshold) when a threshold is given. paste_masks_rle
// returns every mask thresholded as COCO compressed RLE, without building the image-sized
// masks: the counts strings one after the other (uint8) and their offsets ([N + 1], int64).
// Kernels: ops/cpu/paste_masks_kernel.cpp, ops/cuda/paste_masks_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def(
      "paste_masks(Tensor masks, Tensor boxes, SymInt height, SymInt width, int padding=1, "
      "float? threshold=None) -> Tensor");
  m.def(
      "paste_masks_rle(Tensor masks, Tensor boxes, int height, int width, int padding=1, "
      "float threshold=0.5) -> (Tensor, Tensor)");
}
