# make demo | make test | make bench: each sets up .venv (pinned dependencies), builds the
# extension in place, then runs. Everything is incremental after the first run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
export CUDA_HOME ?= /usr/local/cuda
# Triton kernels run on the CPU through its interpreter unless a GPU is present; the
# variable must be set before anything imports triton.
TRITON_MODE := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 0 || echo 1)

.PHONY: demo test bench build cuda-build clean

$(DEPS): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

build: $(DEPS)
	$(PY) setup.py --quiet build_ext --inplace

# The cases the project's speed targets are stated on (benchmarks/RESULTS.md).
DEMO_CASES := (roi_align_forward and 7-2-nchw) or (multi_scale_roi_align and 7-) or (test_nms and 10000) \
	or (batched_nms and 3000) or (bench_mask_logits and 100-3002) or (bench_transfer_mlp and 3002) or uncached \
	or (bench_paste_masks and thresholded)

demo: build
	$(PY) -m benchmarks -k "$(DEMO_CASES)"
	$(PY) -m benchmarks.paired

test: build
	TRITON_INTERPRET=$(TRITON_MODE) $(PY) -m pytest tests -q -ra

bench: build
	$(PY) -m benchmarks

# Compiles and links every CUDA source (no GPU needed) into build/cuda, apart from the
# in-place build, so CUDA code is checked on machines without a GPU.
cuda-build: $(DEPS)
	FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-9.0}" $(PY) setup.py --quiet build_ext \
		--build-temp build/cuda-temp --build-lib build/cuda-lib

clean:
	rm -rf build maskx_kernels/*.so
