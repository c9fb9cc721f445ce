// Argument checks of paste_masks and paste_masks_rle, and the host half of the RLE output
// (declared in paste_masks_checks.h).
#include "ops/paste_masks_checks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/checks.h"

namespace maskx {
namespace paste_masks {

using namespace checks;

void check_args(
    const char* op,
    const at::Tensor& masks,
    const at::Tensor& boxes,
    int64_t height,
    int64_t width,
    int64_t padding,
    std::optional<double> threshold) {
  check_shape(masks.dim() == 3, op, "masks", masks, "[N, M, M]");
  check_float(op, "masks", masks);
  TORCH_CHECK_VALUE(
      masks.size(1) > 0 && masks.size(2) > 0, op, ": masks must have a positive size, got shape ", masks.sizes());
  check_shape(
      boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0),
      op,
      "boxes",
      boxes,
      "[N, 4] with N = ",
      masks.size(0),
      " (one box per mask)");
  TORCH_CHECK_VALUE(
      boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
      op,
      ": boxes must be float32 or float64, got ",
      boxes.scalar_type());
  check_same_device(op, "boxes", boxes, "masks", masks);
  TORCH_CHECK_VALUE(
      height >= 0 && width >= 0, op, ": image size must be non-negative, got (", height, ", ", width, ")");
  TORCH_CHECK_VALUE(
      padding >= 0 && padding <= kMaxPadding, op, ": padding must be in [0, ", kMaxPadding, "], got ", padding);
  if (threshold.has_value()) {
    TORCH_CHECK_VALUE(std::isfinite(*threshold), op, ": threshold must be finite, got ", *threshold);
  }
}

void check_box_values(const char* op, const at::Tensor& boxes) {
  const at::Tensor b = boxes.to(at::kDouble).contiguous();
  const double* v = b.data_ptr<double>();
  for (int64_t n = 0; n < b.size(0); ++n) {
    for (int k = 0; k < 4; ++k) {
      const double x = v[n * 4 + k];
      TORCH_CHECK_VALUE(
          std::isfinite(x) && std::abs(x) <= kMaxCoordinate,
          op,
          ": box ",
          n,
          " = (",
          v[n * 4],
          ", ",
          v[n * 4 + 1],
          ", ",
          v[n * 4 + 2],
          ", ",
          v[n * 4 + 3],
          ") needs finite coordinates within +-2^30");
    }
  }
}

double box_scale(int64_t mask_width, int64_t padding) {
  return static_cast<double>(mask_width + 2 * padding) / static_cast<double>(mask_width);
}

std::vector<Geometry> geometries(
    const at::Tensor& boxes,
    int64_t mask_width,
    int64_t padding,
    int64_t height,
    int64_t width) {
  const at::Tensor b = boxes.contiguous();
  const int64_t n = b.size(0);
  std::vector<Geometry> out(n);
  const double scale = box_scale(mask_width, padding);
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "paste_masks_geometry", [&] {
    const scalar_t* v = b.data_ptr<scalar_t>();
    for (int64_t i = 0; i < n; ++i) {
      out[i] = box_geometry<scalar_t>(v + 4 * i, static_cast<scalar_t>(scale), height, width);
    }
  });
  return out;
}

namespace {

// Runs of equal values in column-major order, starting with zeros.
class Runs {
 public:
  void add(uint8_t value, int64_t length) {
    if (length == 0)
      return;
    if (value != value_) {
      counts_.push_back(length_);
      value_ = value;
      length_ = 0;
    }
    length_ += length;
  }

  std::vector<int64_t> finish() {
    counts_.push_back(length_);
    return std::move(counts_);
  }

 private:
  std::vector<int64_t> counts_;
  uint8_t value_ = 0;
  int64_t length_ = 0;
};

// COCO's compressed form of run lengths (pycocotools' rleToString): each count, less the
// count two before it from the fourth on, in 5-bit groups, low first, as characters from
// '0'; a set 0x20 bit means another group follows.
std::string counts_to_string(const std::vector<int64_t>& counts) {
  std::string s;
  s.reserve(counts.size() * 2);
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2)
      x -= counts[i - 2];
    bool more = true;
    while (more) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5; // arithmetic: negative differences end at -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more)
        c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

} // namespace

std::string encode_rle(const uint8_t* crop, const Geometry& g, int64_t height, int64_t width) {
  Runs runs;
  if (g.empty()) {
    runs.add(0, height * width);
    return counts_to_string(runs.finish());
  }
  const int64_t rows = g.y_end - g.y_begin, cols = g.x_end - g.x_begin;
  // The crop column-major (in tiles, so both sides stay in cache), then each column's runs.
  std::vector<uint8_t> columns(rows * cols);
  constexpr int64_t kTile = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    const int64_t i1 = std::min(i0 + kTile, rows);
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = std::min(j0 + kTile, cols);
      for (int64_t j = j0; j < j1; ++j) {
        uint8_t* dst = columns.data() + j * rows;
        for (int64_t i = i0; i < i1; ++i)
          dst[i] = crop[i * cols + j];
      }
    }
  }
  runs.add(0, g.x_begin * height);
  for (int64_t j = 0; j < cols; ++j) {
    runs.add(0, g.y_begin);
    const uint8_t* column = columns.data() + j * rows;
    int64_t i = 0;
    while (i < rows) {
      const uint8_t value = column[i] != 0;
      // The next pixel of the other value (pixels are 0 or 1).
      const void* next = std::memchr(column + i, value ? 0 : 1, rows - i);
      const int64_t end = next ? static_cast<const uint8_t*>(next) - column : rows;
      runs.add(value, end - i);
      i = end;
    }
    runs.add(0, height - g.y_end);
  }
  runs.add(0, (width - g.x_end) * height);
  return counts_to_string(runs.finish());
}

std::tuple<at::Tensor, at::Tensor> pack_strings(const std::vector<std::string>& strings) {
  const int64_t n = static_cast<int64_t>(strings.size());
  at::Tensor offsets = at::empty({n + 1}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = offsets.data_ptr<int64_t>();
  o[0] = 0;
  for (int64_t i = 0; i < n; ++i)
    o[i + 1] = o[i] + static_cast<int64_t>(strings[i].size());
  at::Tensor chars = at::empty({o[n]}, at::TensorOptions().dtype(at::kByte));
  uint8_t* c = chars.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(c + o[i], strings[i].data(), strings[i].size());
  return {chars, offsets};
}

} // namespace paste_masks
} // namespace maskx
