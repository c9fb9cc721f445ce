# make demo | make test | make bench: each sets up .venv (pinned dependencies), builds the
# extension in place, then runs. Everything is incremental after the first run. make lint
# sets up .venv and runs the linters (no build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
export CUDA_HOME ?= /usr/local/cuda
# Triton kernels run on the CPU through its interpreter unless a GPU is present; the
# variable must be set before anything imports triton.
TRITON_MODE := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 0 || echo 1)

.PHONY: demo test bench lint build cuda-build clean

$(DEPS): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

build: $(DEPS)
	$(PY) setup.py --quiet build_ext --inplace

# The short kernel table that ends make demo: maskx against torchvision on the cases the
# project's speed targets are stated on (benchmarks/RESULTS.md); make bench runs them all.
DEMO_CASES := (test_roi_align_forward and 7-2-nchw) or (test_multi_scale_roi_align and False-7) \
	or (test_nms and 10000) or (test_batched_nms and 3000) \
	or (bench_mask_logits and test_forward and 100-3002 and not backward) \
	or (bench_paste_masks and thresholded)

# The main job: generate the synthetic benchmark, train a detector and the mask heads on
# it, evaluate them on held-out images (results/demo/table.md), then the kernel table.
demo: build
	$(PY) -m maskx demo --config configs/demo.yaml --out results/demo
	$(PY) -m benchmarks -k "$(DEMO_CASES)"

test: build
	TRITON_INTERPRET=$(TRITON_MODE) $(PY) -m pytest tests -q -ra

# Python through ruff (rules and line length in pyproject.toml), C++ and CUDA through
# clang-format (.clang-format); both pinned in requirements.txt. Fix with
# `ruff check --fix .` and `clang-format -i` on the files listed.
CXX_SOURCES = $(shell find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | sort)

lint: $(DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

bench: build
	$(PY) -m benchmarks

# Compiles and links every CUDA source (no GPU needed) into build/cuda, apart from the
# in-place build, so CUDA code is checked on machines without a GPU.
cuda-build: $(DEPS)
	FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-9.0}" $(PY) setup.py --quiet build_ext \
		--build-temp build/cuda-temp --build-lib build/cuda-lib

clean:
	rm -rf build maskx_kernels/*.so
