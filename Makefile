# rtstyle: `make demo` and `make test` set everything up from a fresh clone.
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
# Data beside the repository (VGG-16 weights, images, clips); used by the tests and the demo when present.
SHARED ?= $(abspath ../shared)
export RTSTYLE_SHARED ?= $(SHARED)
VGG := $(SHARED)/assets/vgg16/vgg16_features.pth
ifneq ($(wildcard $(VGG)),)
export RTSTYLE_VGG16 ?= $(VGG)
endif

.PHONY: venv demo test fuzz bench tensorrt-rtx clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# TensorRT-RTX: builds engines ahead of time even without a GPU, so CI tests the real engine build.
$(VENV)/.tensorrt-rtx: $(VENV)/.installed
	$(BIN)/pip install -q tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings
	touch $@

tensorrt-rtx: $(VENV)/.tensorrt-rtx

demo: venv
	$(BIN)/rtstyle demo --out out/demo

test: venv tensorrt-rtx
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/rtstyle bench

clean:
	rm -rf $(VENV) out runs .pytest_cache
