#pragma once
// Argument checks shared by the CPU and CUDA kernels of paste_masks and paste_masks_rle,
// and the host half of the RLE output (runs of a thresholded crop, COCO's string form).
// Failures raise ValueError in Python. Defined once, in the .cpp beside this header.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/paste_masks_common.h"

namespace maskx {
namespace paste_masks {

// masks [N, M_h, M_w] floating, boxes [N, 4] float32/float64 on the masks' device,
// height, width >= 0, padding in [0, kMaxPadding], a finite threshold.
void check_args(
    const char* op,
    const at::Tensor& masks,
    const at::Tensor& boxes,
    int64_t height,
    int64_t width,
    int64_t padding,
    std::optional<double> threshold);

// Box coordinates finite and within +-kMaxCoordinate (CPU boxes; reads every value).
void check_box_values(const char* op, const at::Tensor& boxes);

// The expanded box's scale, (M_w + 2 padding) / M_w as torchvision computes it (a Python
// float).
double box_scale(int64_t mask_width, int64_t padding);

// Geometry of every mask, from CPU boxes.
std::vector<Geometry> geometries(
    const at::Tensor& boxes,
    int64_t mask_width,
    int64_t padding,
    int64_t height,
    int64_t width);

// COCO compressed RLE of one image-sized mask that is zero outside g's pixels, where
// `crop` holds the (g.y_end - g.y_begin) x (g.x_end - g.x_begin) pixels of g row-major,
// 0 or 1. Runs go down the columns (column-major), starting with a run of zeros.
std::string encode_rle(const uint8_t* crop, const Geometry& g, int64_t height, int64_t width);

// (strings concatenated as uint8 [total], offsets int64 [N + 1]) on the CPU.
std::tuple<at::Tensor, at::Tensor> pack_strings(const std::vector<std::string>& strings);

} // namespace paste_masks
} // namespace maskx
