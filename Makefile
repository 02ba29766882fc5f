# hdr-distill: `make demo` and `make test` are the only two commands a fresh machine needs.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test bench report photos hdr clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# One line per install step; pip's own output goes to $(LOG) and its tail is shown only when a step fails.
LOG := $(VENV)/install.log
define step
	@printf '  %-58s' '$(1)'; if $(2) >>$(LOG) 2>&1; then echo ok; else echo FAILED; tail -n 40 $(LOG); \
	  echo "(full log: $(LOG))"; exit 1; fi
endef

$(STAMP): pyproject.toml students/csrc/*.cpp $(wildcard students/csrc/*.h)
	@test -d $(VENV) || $(PY_SYS) -m venv $(VENV)
	@: > $(LOG)
	@echo "setup: installing into $(VENV) (log: $(LOG))"
	$(call step,pip itself,$(PY) -m pip install -q --upgrade pip)
	@# torchvision (needed by lpips) exists here only as the CUDA build of torch 2.14.1; it runs on CPU.
	$(call step,torch 2.14.1 + torchvision 0.29.1 (~5.6 GB; about 2 min),$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1)
	$(call step,hdr-distill and its dependencies,$(PY) -m pip install -q -e '.[dev]')
	$(call step,the fused C++ kernel (cached in students/_lib),$(PY) -m students.build)
	@touch $(STAMP)

setup: $(STAMP) ## create .venv, install the project, build the fused kernel (fast when done)
	@$(PY) -m students.build --quiet

demo: setup ## distill, time and report the local Laplacian; the shipped student beside it (~10 min)
	@$(PY) -m distill.data.photo_set --dest .cache/photos || echo "demo: no photo set (needs apt-get); the \
	shipped student is judged on coffee and rocket only"
	$(PY) -m distill.demo $(ARGS)

test: setup ## run the test suite
	$(PY) -m pytest $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: setup ## student vs all teachers, 0.25-12 MP, memory (~12 min; ARGS="teachers=[reinhard] sizes=[1080p]")
	$(VENV)/bin/hdr-distill bench $(ARGS)

report: setup ## fidelity report for a checkpoint (ARGS='checkpoint=...'; default: the demo's)
	$(VENV)/bin/hdr-distill report $(ARGS)

photos: setup ## 57 training photos from Debian packages into .cache/photos (~320 MB download, once; data=photos_leaves)
	$(PY) -m distill.data.photo_set --dest .cache/photos $(ARGS)

hdr: setup ## real HDR views from Debian's blender-data into .cache/hdr (~31 MB download, once; data=real_hdr_views)
	$(PY) -m distill.data.real_hdr --dest .cache/hdr $(ARGS)

clean: ## remove build products and outputs (keeps .venv; rm -rf .venv to reinstall)
	rm -rf build *.egg-info students/_lib outputs multirun demo_out .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
