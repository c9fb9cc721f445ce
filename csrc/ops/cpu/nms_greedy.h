#pragma once
// Greedy NMS on the CPU, shared by the nms, batched_nms and multiclass_nms kernels.
//
// Candidates are sorted once by decreasing score (ties: lower id first) and split by
// class with a stable counting sort, so each class keeps score order. A class runs
// greedy NMS over a structure-of-arrays copy of its boxes, kBlock candidates at a time:
// the block's own survivors are settled sequentially, then the block's kept boxes
// suppress every later candidate in one vectorised pass (a lane group of later
// candidates stays in registers while the kept boxes stream past it and stops as soon
// as all its lanes are suppressed), and suppressed candidates are compacted away so that
// later passes never see them again. This is exactly the sequential greedy rule of
// torchvision. Threads share a pass, or run small classes side by side, once the work
// is large enough to pay for a fork-join (kPairsPerTask).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ops/nms_common.h"

namespace maskx {
namespace nms {

constexpr int64_t kBlock = 128;
// Classes at least this large are spread over threads one at a time; smaller classes
// each run on one thread, several classes in parallel.
constexpr int64_t kLargeClass = 2048;
// Candidate-vs-kept IoU evaluations that a thread must have to do before work is split.
// An evaluation is a handful of vector operations, while a fork-join waits for every
// thread to be scheduled, which on cores shared with other processes costs up to a
// scheduler tick: only a pass that runs long on one thread compared with that wait is
// worth splitting (on shared cores, splitting shorter passes made NMS slower than one
// thread).
constexpr int64_t kPairsPerTask = 1 << 24;
// Values per task of the element-wise loops, for the same reason.
constexpr int64_t kElementsPerTask = 1 << 24;

// One class's candidates in decreasing score order, as a structure of arrays. The arrays
// are padded by one vector so that whole-vector loads at the end stay in bounds; lanes
// past `size` are masked out.
template <typename T>
struct Candidates {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<int64_t> rank; // position in the global score order
  std::vector<uint8_t> dead;
  int64_t size = 0;

  void reset(int64_t n) {
    const size_t padded = static_cast<size_t>(n + at::vec::Vectorized<T>::size());
    for (std::vector<T>* v : {&x1, &y1, &x2, &y2, &area}) {
      v->assign(padded, T(0));
    }
    rank.resize(n);
    dead.assign(padded, 0);
    size = n;
  }

  void set(int64_t i, const T* box, int64_t r) {
    x1[i] = box[0];
    y1[i] = box[1];
    x2[i] = box[2];
    y2[i] = box[3];
    area[i] = box_area(box[0], box[1], box[2], box[3]);
    rank[i] = r;
  }

  // Drops the dead candidates in [begin, size), keeping order.
  void compact(int64_t begin) {
    int64_t w = begin;
    for (int64_t r = begin; r < size; ++r) {
      if (!dead[r]) {
        x1[w] = x1[r];
        y1[w] = y1[r];
        x2[w] = x2[r];
        y2[w] = y2[r];
        area[w] = area[r];
        rank[w] = rank[r];
        dead[w] = 0;
        ++w;
      }
    }
    size = w;
  }
};

// The kept boxes of the current block.
template <typename T>
struct KeptBlock {
  T x1[kBlock], y1[kBlock], x2[kBlock], y2[kBlock], area[kBlock];
  int64_t count = 0;

  void push(const Candidates<T>& c, int64_t i) {
    x1[count] = c.x1[i];
    y1[count] = c.y1[i];
    x2[count] = c.x2[i];
    y2[count] = c.y2[i];
    area[count] = c.area[i];
    ++count;
  }
};

// Marks dead every candidate in [begin, end) that a kept box in [k_begin, k_end)
// overlaps by more than `threshold` (iou_above in nms_common.h, one lane per candidate).
// Returns how many candidates it newly marked.
template <typename T>
int64_t suppress(
    Candidates<T>& c,
    const KeptBlock<T>& kept,
    int64_t k_begin,
    int64_t k_end,
    int64_t begin,
    int64_t end,
    T threshold) {
  using Vec = at::vec::Vectorized<T>;
  constexpr int64_t L = Vec::size();
  const Vec zero(T(0));
  const Vec thr(threshold);
  int64_t newly = 0;
  for (int64_t j = begin; j < end; j += L) {
    const int valid = static_cast<int>((uint32_t(1) << std::min<int64_t>(L, end - j)) - 1);
    const Vec bx1 = Vec::loadu(&c.x1[j]);
    const Vec by1 = Vec::loadu(&c.y1[j]);
    const Vec bx2 = Vec::loadu(&c.x2[j]);
    const Vec by2 = Vec::loadu(&c.y2[j]);
    const Vec barea = Vec::loadu(&c.area[j]);
    int hit = 0;
    for (int64_t k = k_begin; k < k_end; ++k) {
      const Vec w =
          at::vec::clamp_min(at::vec::clamp_max(bx2, Vec(kept.x2[k])) - at::vec::clamp_min(bx1, Vec(kept.x1[k])), zero);
      const Vec h =
          at::vec::clamp_min(at::vec::clamp_max(by2, Vec(kept.y2[k])) - at::vec::clamp_min(by1, Vec(kept.y1[k])), zero);
      const Vec inter = w * h;
      const Vec iou = inter / ((Vec(kept.area[k]) + barea) - inter);
      hit |= ~(iou > thr).zero_mask() & valid;
      if (hit == valid) {
        break;
      }
    }
    while (hit != 0) {
      const int l = __builtin_ctz(static_cast<unsigned>(hit));
      hit &= hit - 1;
      newly += c.dead[j + l] == 0;
      c.dead[j + l] = 1;
    }
  }
  return newly;
}

// Greedy NMS within one class; sets keep_rank[rank] for each kept candidate.
template <typename T>
void greedy_nms(Candidates<T>& c, T threshold, uint8_t* keep_rank) {
  constexpr int64_t L = at::vec::Vectorized<T>::size();
  KeptBlock<T> kept;
  for (int64_t begin = 0; begin < c.size; begin += kBlock) {
    const int64_t end = std::min(begin + kBlock, c.size);
    kept.count = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (c.dead[i]) {
        continue;
      }
      keep_rank[c.rank[i]] = 1;
      kept.push(c, i);
      suppress(c, kept, kept.count - 1, kept.count, i + 1, end, threshold);
    }
    if (kept.count == 0 || end == c.size) {
      continue;
    }
    const int64_t groups = (c.size - end + L - 1) / L;
    const int64_t grain = std::max<int64_t>(1, kPairsPerTask / (kept.count * L));
    std::atomic<int64_t> newly{0};
    at::parallel_for(0, groups, grain, [&](int64_t lo, int64_t hi) {
      newly += suppress(c, kept, 0, kept.count, end + lo * L, std::min(end + hi * L, c.size), threshold);
    });
    if (newly > 0) {
      c.compact(end);
    }
  }
}

// Stable grouping of the ranks 0..n-1 by class: class-major, score order within a
// class. Returns the ranks and the start of each class (plus n at the end).
inline std::pair<std::vector<int64_t>, std::vector<int64_t>> group_by_class(
    const std::vector<int64_t>& order,
    const int64_t* classes) {
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<int64_t> grouped(n);
  std::vector<int64_t> begins;
  const auto [lo_it, hi_it] = std::minmax_element(classes, classes + n);
  const uint64_t range = static_cast<uint64_t>(*hi_it) - static_cast<uint64_t>(*lo_it) + 1;
  if (range <= static_cast<uint64_t>(2 * n + 65536)) {
    // Counting sort over the class range.
    std::vector<int64_t> start(range + 1, 0);
    for (int64_t r = 0; r < n; ++r) {
      ++start[classes[order[r]] - *lo_it + 1];
    }
    std::partial_sum(start.begin(), start.end(), start.begin());
    for (uint64_t k = 0; k < range; ++k) {
      if (start[k + 1] > start[k]) {
        begins.push_back(start[k]);
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      grouped[start[classes[order[r]] - *lo_it]++] = r;
    }
  } else {
    // Class ids spread too widely to count: sort the ranks by class instead.
    std::iota(grouped.begin(), grouped.end(), 0);
    std::stable_sort(
        grouped.begin(), grouped.end(), [&](int64_t a, int64_t b) { return classes[order[a]] < classes[order[b]]; });
    for (int64_t r = 0; r < n; ++r) {
      if (r == 0 || classes[order[grouped[r]]] != classes[order[grouped[r - 1]]]) {
        begins.push_back(r);
      }
    }
  }
  begins.push_back(n);
  return {std::move(grouped), std::move(begins)};
}

// Greedy NMS over n candidates (boxes [n, 4], scores [n]), within each class when
// `classes` is given. Returns the kept candidate ids in decreasing score order, ties
// broken by lower id.
template <typename T>
std::vector<int64_t> nms_by_class(int64_t n, const T* boxes, const T* scores, const int64_t* classes, T threshold) {
  if (n == 0) {
    return {};
  }
  std::vector<std::pair<T, int64_t>> keyed(n);
  for (int64_t i = 0; i < n; ++i) {
    keyed[i] = {scores[i], i};
  }
  std::sort(keyed.begin(), keyed.end(), [](const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<int64_t> order(n);
  for (int64_t r = 0; r < n; ++r) {
    order[r] = keyed[r].second;
  }

  std::vector<int64_t> grouped, begins;
  if (classes != nullptr) {
    std::tie(grouped, begins) = group_by_class(order, classes);
  } else {
    grouped.resize(n);
    std::iota(grouped.begin(), grouped.end(), 0);
    begins = {0, n};
  }

  // Classes write disjoint entries, so threads never share one.
  std::vector<uint8_t> keep_rank(n, 0);
  auto run_class = [&](int64_t g, Candidates<T>& c) {
    const int64_t b = begins[g];
    c.reset(begins[g + 1] - b);
    for (int64_t i = 0; i < c.size; ++i) {
      const int64_t r = grouped[b + i];
      c.set(i, boxes + order[r] * 4, r);
    }
    greedy_nms(c, threshold, keep_rank.data());
  };
  const int64_t num_classes = static_cast<int64_t>(begins.size()) - 1;
  std::vector<int64_t> small;
  Candidates<T> large;
  for (int64_t g = 0; g < num_classes; ++g) {
    if (begins[g + 1] - begins[g] >= kLargeClass) {
      run_class(g, large);
    } else {
      small.push_back(g);
    }
  }
  int64_t small_pairs = 0;
  for (const int64_t g : small) {
    small_pairs += (begins[g + 1] - begins[g]) * (begins[g + 1] - begins[g]);
  }
  const int64_t num_small = static_cast<int64_t>(small.size());
  const int64_t grain = small_pairs >= 2 * kPairsPerTask ? 1 : std::max<int64_t>(num_small, 1);
  at::parallel_for(0, num_small, grain, [&](int64_t lo, int64_t hi) {
    Candidates<T> c;
    for (int64_t s = lo; s < hi; ++s) {
      run_class(small[s], c);
    }
  });

  std::vector<int64_t> kept;
  for (int64_t r = 0; r < n; ++r) {
    if (keep_rank[r]) {
      kept.push_back(order[r]);
    }
  }
  return kept;
}

// Raises ValueError naming `what` when one of the n values is infinite or NaN.
template <typename T>
void check_finite(const char* op, const char* what, const T* values, int64_t n) {
  using Vec = at::vec::Vectorized<T>;
  std::atomic<bool> finite{true};
  at::parallel_for(0, n, kElementsPerTask, [&](int64_t lo, int64_t hi) {
    bool ok = true;
    int64_t i = lo;
    for (; i + Vec::size() <= hi && ok; i += Vec::size()) {
      ok = !Vec::loadu(values + i).has_inf_nan();
    }
    for (; i < hi && ok; ++i) {
      ok = std::isfinite(static_cast<double>(values[i]));
    }
    if (!ok) {
      finite = false;
    }
  });
  TORCH_CHECK_VALUE(finite, op, ": ", what, " must be finite, got inf or NaN");
}

// The compute type of NMS: float64 for float64 inputs, float32 otherwise.
inline at::ScalarType compute_type(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

// NMS (per class when `classes` is defined) over boxes [N, 4] and scores [N] of a
// floating dtype on the CPU; returns the kept indices as an int64 tensor.
inline at::Tensor nms_cpu(
    const char* op,
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const at::Tensor& classes,
    double iou_threshold) {
  const at::ScalarType type = compute_type(boxes.scalar_type());
  const at::Tensor b = boxes.to(type).contiguous();
  const at::Tensor s = scores.to(type).contiguous();
  const at::Tensor k = classes.defined() ? classes.to(at::kLong).contiguous() : at::Tensor();
  const int64_t n = b.size(0);
  std::vector<int64_t> kept;
  AT_DISPATCH_FLOATING_TYPES(type, "nms_cpu", [&] {
    check_finite(op, "boxes", b.data_ptr<scalar_t>(), b.numel());
    check_finite(op, "scores", s.data_ptr<scalar_t>(), n);
    kept = nms_by_class<scalar_t>(
        n,
        b.data_ptr<scalar_t>(),
        s.data_ptr<scalar_t>(),
        k.defined() ? k.data_ptr<int64_t>() : nullptr,
        compute_threshold<scalar_t>(iou_threshold));
  });
  at::Tensor out = at::empty({static_cast<int64_t>(kept.size())}, boxes.options().dtype(at::kLong));
  std::copy(kept.begin(), kept.end(), out.data_ptr<int64_t>());
  return out;
}

} // namespace nms
} // namespace maskx
