// Autograd of maskx::roi_align and maskx::multi_scale_roi_align, in C++ like
// torchvision's: the forward and backward passes run no Python. Both call the ops below
// autograd, so every backend's kernel (and the fake kernels under torch.compile) serves.
// Sizes are SymInts, so the ops trace with dynamic shapes.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <vector>

namespace maskx {
namespace roi_align {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor forward_op(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    const c10::SymInt& pooled_height,
    const c10::SymInt& pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("maskx::roi_align", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, c10::SymInt, c10::SymInt, int64_t, bool)>();
  return op.call(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
}

at::Tensor backward_op(
    const at::Tensor& grad,
    const at::Tensor& rois,
    double spatial_scale,
    const c10::SymInt& pooled_height,
    const c10::SymInt& pooled_width,
    c10::SymIntArrayRef shape,
    int64_t sampling_ratio,
    bool aligned,
    bool channels_last) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::_roi_align_backward", "")
                       .typed<at::Tensor(
                           const at::Tensor&,
                           const at::Tensor&,
                           double,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           int64_t,
                           bool,
                           bool)>();
  return op.call(
      grad,
      rois,
      spatial_scale,
      pooled_height,
      pooled_width,
      shape[0],
      shape[1],
      shape[2],
      shape[3],
      sampling_ratio,
      aligned,
      channels_last);
}

at::Tensor multi_scale_forward_op(
    at::TensorList features,
    const at::Tensor& rois,
    const at::Tensor& levels,
    at::ArrayRef<double> spatial_scales,
    const c10::SymInt& pooled_height,
    const c10::SymInt& pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::multi_scale_roi_align", "")
                       .typed<at::Tensor(
                           at::TensorList,
                           const at::Tensor&,
                           const at::Tensor&,
                           at::ArrayRef<double>,
                           c10::SymInt,
                           c10::SymInt,
                           int64_t,
                           bool)>();
  return op.call(features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned);
}

std::vector<at::Tensor> multi_scale_backward_op(
    const at::Tensor& grad,
    const at::Tensor& rois,
    const at::Tensor& levels,
    at::ArrayRef<double> spatial_scales,
    const c10::SymInt& pooled_height,
    const c10::SymInt& pooled_width,
    const c10::SymInt& batch_size,
    const c10::SymInt& channels,
    c10::SymIntArrayRef heights,
    c10::SymIntArrayRef widths,
    int64_t sampling_ratio,
    bool aligned,
    bool channels_last) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::_multi_scale_roi_align_backward", "")
                       .typed<std::vector<at::Tensor>(
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           at::ArrayRef<double>,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymInt,
                           c10::SymIntArrayRef,
                           c10::SymIntArrayRef,
                           int64_t,
                           bool,
                           bool)>();
  return op.call(
      grad,
      rois,
      levels,
      spatial_scales,
      pooled_height,
      pooled_width,
      batch_size,
      channels,
      heights,
      widths,
      sampling_ratio,
      aligned,
      channels_last);
}

std::vector<c10::SymInt> to_sym_ints(const c10::IValue& list) {
  std::vector<c10::SymInt> out;
  for (const c10::IValue& v : list.toListRef())
    out.push_back(v.toSymInt());
  return out;
}

// The pooling arguments every RoIAlign backward needs again, and the input's memory
// format: a gradient in another layout than its input's would be copied by autograd.
void save_pooling(
    AutogradContext* ctx,
    const at::Tensor& input,
    const c10::SymInt& pooled_height,
    const c10::SymInt& pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  ctx->saved_data["channels_last"] = input.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  ctx->saved_data["pooled_height"] = pooled_height;
  ctx->saved_data["pooled_width"] = pooled_width;
  ctx->saved_data["sampling_ratio"] = sampling_ratio;
  ctx->saved_data["aligned"] = aligned;
}

class RoIAlign : public torch::autograd::Function<RoIAlign> {
 public:
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& input,
      const at::Tensor& rois,
      double spatial_scale,
      const c10::SymInt& pooled_height,
      const c10::SymInt& pooled_width,
      int64_t sampling_ratio,
      bool aligned) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({rois});
    ctx->saved_data["spatial_scale"] = spatial_scale;
    ctx->saved_data["input_shape"] = input.sym_sizes();
    save_pooling(ctx, input, pooled_height, pooled_width, sampling_ratio, aligned);
    return forward_op(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& d = ctx->saved_data;
    at::Tensor grad_input = backward_op(
        grad_outputs[0],
        ctx->get_saved_variables()[0],
        d.at("spatial_scale").toDouble(),
        d.at("pooled_height").toSymInt(),
        d.at("pooled_width").toSymInt(),
        to_sym_ints(d.at("input_shape")),
        d.at("sampling_ratio").toInt(),
        d.at("aligned").toBool(),
        d.at("channels_last").toBool());
    return {grad_input, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class MultiScaleRoIAlign : public torch::autograd::Function<MultiScaleRoIAlign> {
 public:
  static at::Tensor forward(
      AutogradContext* ctx,
      at::TensorList features,
      const at::Tensor& rois,
      const at::Tensor& levels,
      at::ArrayRef<double> spatial_scales,
      const c10::SymInt& pooled_height,
      const c10::SymInt& pooled_width,
      int64_t sampling_ratio,
      bool aligned) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    TORCH_CHECK_VALUE(!features.empty(), "multi_scale_roi_align: needs at least one feature level");
    std::vector<c10::SymInt> heights, widths;
    for (const at::Tensor& f : features) {
      TORCH_CHECK_VALUE(f.dim() == 4, "multi_scale_roi_align: every level must be a Tensor[N, C, H, W]");
      heights.push_back(f.sym_size(2));
      widths.push_back(f.sym_size(3));
    }
    ctx->save_for_backward({rois, levels});
    ctx->saved_data["spatial_scales"] = spatial_scales.vec();
    ctx->saved_data["batch_size"] = features[0].sym_size(0);
    ctx->saved_data["channels"] = features[0].sym_size(1);
    ctx->saved_data["heights"] = c10::SymIntArrayRef(heights);
    ctx->saved_data["widths"] = c10::SymIntArrayRef(widths);
    save_pooling(ctx, features[0], pooled_height, pooled_width, sampling_ratio, aligned);
    return multi_scale_forward_op(
        features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& d = ctx->saved_data;
    const variable_list saved = ctx->get_saved_variables();
    const std::vector<double> scales = d.at("spatial_scales").toDoubleVector();
    variable_list grads = multi_scale_backward_op(
        grad_outputs[0],
        saved[0],
        saved[1],
        scales,
        d.at("pooled_height").toSymInt(),
        d.at("pooled_width").toSymInt(),
        d.at("batch_size").toSymInt(),
        d.at("channels").toSymInt(),
        to_sym_ints(d.at("heights")),
        to_sym_ints(d.at("widths")),
        d.at("sampling_ratio").toInt(),
        d.at("aligned").toBool(),
        d.at("channels_last").toBool());
    // One gradient per level, then none for rois, levels and the five other arguments.
    grads.resize(grads.size() + 7);
    return grads;
  }
};

at::Tensor roi_align_autograd(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    c10::SymInt pooled_height,
    c10::SymInt pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  return RoIAlign::apply(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
}

at::Tensor multi_scale_roi_align_autograd(
    at::TensorList features,
    const at::Tensor& rois,
    const at::Tensor& levels,
    at::ArrayRef<double> spatial_scales,
    c10::SymInt pooled_height,
    c10::SymInt pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  return MultiScaleRoIAlign::apply(
      features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, Autograd, m) {
  m.impl("roi_align", &roi_align_autograd);
  m.impl("multi_scale_roi_align", &multi_scale_roi_align_autograd);
}

} // namespace roi_align
} // namespace maskx
