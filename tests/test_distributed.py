"""Two processes on the CPU (gloo): FSDP2 and DDP runs follow the one-process run of the same
global batch, the FSDP2 run resumes from its sharded checkpoint, and its ``hf/`` export is one
consolidated checkpoint equal to the unsharded run's.

The runs are CurioSFT with the lagged teacher synced every 2 steps (``loss=curio
temp=entropy_guided teacher.sync_every=2``), 4 optimizer steps, validation after steps 2 and 4, so
a teacher sync (before step 3) follows a validation pass and both are covered. The embeddings
are tied (as in Qwen2.5-1.5B and SmolLM2), the harder case for sharding: the output layer and the
embedding are one parameter of the root unit.

Same global batch: one process with micro-batches of 2 and 2 accumulation steps, or two processes
with micro-batches of 2 and no accumulation. The sampler gives rank r exactly the micro-batch that
accumulation slot r gets on one process, and every micro-batch is normalised by the tokens of the
whole optimizer step, so the updates are the same sums of the same per-token gradients, added in
a different order (two ranks' gradients reduced by gloo vs accumulated in place). In float32 that
moves the last bits only: the tolerances below (1e-5 relative on logged values, 1e-5 absolute on
weights of order 0.1) leave two orders of magnitude of room over the ~1e-7 differences seen, and
are far below anything a wrong normaliser, a missed teacher sync or an unsynchronised gradient
would produce (those change the loss in the third digit or more).

The two-process runs go through ``train.py`` as a user would start them: Lightning re-launches the
script for rank 1 with rank 0's ``hydra.run.dir``. The tests pass an explicit run dir anyway (to
find the outputs), which is also what torchrun / SLURM launches need (docs/distributed.md).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from curio.train import train

BASE = [
    "model=tiny", "model.net.config.tie_word_embeddings=true",
    "data=jsonl", "data.val_size=8", "data.micro_batch_size=2",
    "loss=curio", "temp=entropy_guided", "teacher=lagged", "teacher.sync_every=2",
    "optim.lr=3e-3", "sched.warmup_steps=2", "trainer.max_steps=4", "trainer.enable_model_summary=false",
    "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.model_checkpoint.save_top_k=-1",
    "~callbacks.progress_bar", "~callbacks.token_plots",
]
# val_check_interval counts micro-batches: validate after optimizer steps 2 and 4 in both layouts.
ONE = BASE + ["trainer.accumulate_grad_batches=2", "trainer.val_check_interval=4"]
TWO = BASE + ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.val_check_interval=2"]
# FSDP2 in float32 (mixed_precision: auto is float32 on the CPU), with activation checkpointing
# per decoder layer on: it must not change the numbers.
FSDP = TWO + ["trainer=fsdp", "module.gradient_checkpointing=true"]
DDP = TWO + ["trainer=ddp", "trainer.precision=32-true"]

CURVES = ("train/loss", "train/ce", "train/k2", "train/logq", "train/grad_norm", "val/loss")
RTOL, WEIGHT_ATOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def data(sums_jsonl) -> list[str]:
    return [f"data.train={sums_jsonl}"]


def run_train(args: list[str], run_dir: Path, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [(int(r["step"]), float(r[k])) for r in rows if r.get(k)] for k in CURVES}


def export(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "hf" / "model.safetensors")


def assert_same_curves(actual: Path, expected: Path) -> None:
    got, want = curves(actual), curves(expected)
    for key in CURVES:
        assert [s for s, _ in got[key]] == [s for s, _ in want[key]], key
        torch.testing.assert_close(
            torch.tensor([v for _, v in got[key]], dtype=torch.float64),
            torch.tensor([v for _, v in want[key]], dtype=torch.float64),
            rtol=RTOL, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}",
        )


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], atol: float) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root, compose_cfg, data):
    """The one-process reference (in this process) and the two-process FSDP2 run."""
    root = tmp_path_factory.mktemp("distributed")
    train(compose_cfg(ONE + data, root / "one"))
    run_train(FSDP + data, root / "fsdp", repo_root)
    return root


def test_fsdp_two_processes_follow_one_process(runs):
    assert_same_curves(runs / "fsdp", runs / "one")
    steps = [s for s, _ in curves(runs / "fsdp")["train/loss"]]
    assert steps == [0, 1, 2, 3]
    # The export is one consolidated Hugging Face checkpoint, equal to the unsharded run's.
    hf = runs / "fsdp" / "hf"
    assert sorted(p.name for p in hf.glob("*.safetensors")) == ["model.safetensors"]
    assert not (runs / "fsdp" / "hf.tmp").exists()
    assert_same_weights(export(runs / "fsdp"), export(runs / "one"), WEIGHT_ATOL)
    # Checkpoints are sharded: a folder with one file per rank and Lightning's metadata.
    last = runs / "fsdp" / "checkpoints" / "last.ckpt"
    assert last.is_dir()
    assert sorted(p.name for p in last.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert not list((runs / "fsdp" / "checkpoints").glob("*.tmp"))


def test_fsdp_resumes_from_its_sharded_checkpoint(runs, repo_root, data):
    ckpt = runs / "fsdp" / "checkpoints" / "step000002.ckpt"
    assert ckpt.is_dir()
    resumed = runs / "fsdp_resumed"
    run_train(FSDP + data + [f"ckpt_path={ckpt}"], resumed, repo_root)
    # Picks up after the checkpoint's two optimizer steps (teacher, optimizer, data position restored).
    assert [s for s, _ in curves(resumed)["train/loss"]] == [2, 3]
    uninterrupted = {k: [(s, v) for s, v in vals if s >= 2] for k, vals in curves(runs / "fsdp").items()}
    for key in ("train/loss", "train/logq", "train/grad_norm"):
        assert curves(resumed)[key] == uninterrupted[key], key
    assert_same_weights(export(resumed), export(runs / "fsdp"), atol=0)


def test_ddp_two_processes_follow_one_process(runs, repo_root, data):
    run_train(DDP + data, runs / "ddp", repo_root)
    assert_same_curves(runs / "ddp", runs / "one")
    assert_same_weights(export(runs / "ddp"), export(runs / "one"), WEIGHT_ATOL)
    assert (runs / "ddp" / "checkpoints" / "last.ckpt").is_file()  # DDP: one ordinary file


# ----------------------------------------------------------------------------- no processes
def test_fsdp_preset_builds_the_strategy(tmp_path, compose_cfg):
    from hydra.utils import instantiate

    from curio.parallel import FSDP2Strategy

    cfg = compose_cfg(["trainer=fsdp"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDP2Strategy)
    assert strategy._tensor_parallel_size == 1 and strategy._data_parallel_size == "auto"
    assert cfg.trainer.precision == "32-true" and cfg.trainer.use_distributed_sampler is False
    assert compose_cfg(["trainer=ddp"], tmp_path).trainer.strategy._target_.endswith("DDPStrategy")


def test_mixed_precision_policy():
    from curio.errors import ConfigError
    from curio.parallel import mixed_precision_policy

    bf16 = mixed_precision_policy("bf16")
    assert bf16.param_dtype == torch.bfloat16 and bf16.reduce_dtype == torch.float32
    assert mixed_precision_policy(None).param_dtype is None
    assert mixed_precision_policy("auto", torch.device("cpu")).param_dtype is None
    assert mixed_precision_policy("auto", torch.device("cuda", 0)).param_dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="mixed_precision"):
        mixed_precision_policy("bf32")


def test_decoder_layers_come_from_no_split_modules():
    from curio.models import build_causal_lm
    from curio.parallel import decoder_layers

    model = build_causal_lm(
        config={"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1}
    )
    layers = decoder_layers(model)
    assert len(layers) == 3 and all(type(m).__name__ == "LlamaDecoderLayer" for m in layers)


def test_run_through_roots_restores_forward():
    from curio.parallel import run_through_roots

    seen = []
    student, teacher = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).requires_grad_(False)
    student.register_forward_pre_hook(lambda m, a: seen.append("student"))
    teacher.register_forward_pre_hook(lambda m, a: seen.append("teacher"))
    out = run_through_roots([student, teacher], lambda x: x * 2, torch.ones(1))
    assert seen == ["student", "teacher"] and out.item() == 2.0
    assert "forward" not in student.__dict__ and "forward" not in teacher.__dict__


LORA = ["model.lora.rank=4", "model.lora.alpha=8", "model.lora.dropout=0"]  # no dropout: ranks draw apart


def test_fsdp_lora_follows_one_process(runs, repo_root, compose_cfg, data):
    """LoRA is injected before sharding, so the two ranks train one sharded adapter (and its
    lagged teacher adapter): the run, its merged export and its adapter equal the one-process run's."""
    train(compose_cfg(ONE + LORA + data, runs / "one_lora"))
    run_train(FSDP + LORA + data, runs / "fsdp_lora", repo_root)
    assert_same_curves(runs / "fsdp_lora", runs / "one_lora")
    assert_same_weights(export(runs / "fsdp_lora"), export(runs / "one_lora"), WEIGHT_ATOL)
    adapter = {run: load_file(runs / run / "adapter" / "adapter_model.safetensors") for run in ("fsdp_lora", "one_lora")}
    assert len(adapter["one_lora"]) == 2 * 7 * 2  # A and B of 7 linear layers in each of 2 decoder layers
    assert_same_weights(adapter["fsdp_lora"], adapter["one_lora"], WEIGHT_ATOL)
    # The adapter trained (B starts at zero) and the merged base moved by it only.
    assert all(v.abs().max() > 0 for k, v in adapter["one_lora"].items() if "lora_B" in k)


def test_fsdp_lora_checkpoint_leaves_out_the_base_and_resumes(runs, repo_root, data):
    """A LoRA run's sharded checkpoint holds the adapters and their optimizer state, not the frozen
    base: its base fingerprints (summed over the two ranks' shards) equal the one-process run's
    (whole tensors), it resumes to the uninterrupted run's numbers exactly, and a resume on
    another base model is refused before any step."""
    from torch.distributed.checkpoint import FileSystemReader

    from curio.lora import LEFT_OUT

    ckpt = runs / "fsdp_lora" / "checkpoints" / "step000002.ckpt"
    assert ckpt.is_dir(), "run test_fsdp_lora_follows_one_process first (same module)"
    left_out = torch.load(ckpt / "meta.pt", weights_only=True)[LEFT_OUT]
    whole = torch.load(runs / "one_lora" / "checkpoints" / "step000002.ckpt", weights_only=True)[LEFT_OUT]
    # 2 decoder layers x (7 linear layers, 2 norms), then the embeddings, the final norm and the output layer
    assert left_out["keys"] == whole["keys"] and len(whole["keys"]) == 2 * 9 + 3
    for key, sharded, one in zip(whole["keys"], left_out["fingerprints"], whole["fingerprints"]):
        torch.testing.assert_close(torch.tensor(sharded, dtype=torch.float64), torch.tensor(one, dtype=torch.float64),
                                   rtol=1e-9, atol=1e-9, msg=lambda m, key=key: f"{key}: {m}")
    saved = FileSystemReader(str(ckpt)).read_metadata().state_dict_metadata
    assert not [key for key in saved if key.removeprefix("state_dict.") in set(whole["keys"])]
    assert any("lora_A.teacher" in key for key in saved) and any("lora_B.default" in key for key in saved)

    resumed = runs / "fsdp_lora_resumed"
    run_train(FSDP + LORA + data + [f"ckpt_path={ckpt}"], resumed, repo_root)
    assert [s for s, _ in curves(resumed)["train/loss"]] == [2, 3]
    uninterrupted = {k: [(s, v) for s, v in vals if s >= 2] for k, vals in curves(runs / "fsdp_lora").items()}
    for key in ("train/loss", "train/logq", "train/grad_norm"):
        assert curves(resumed)[key] == uninterrupted[key], key
    assert_same_weights(export(resumed), export(runs / "fsdp_lora"), atol=0)

    other_base = FSDP + LORA + data + [f"ckpt_path={ckpt}", "+model.net.config.initializer_range=0.05"]
    result = subprocess.run([sys.executable, "train.py", *other_base, f"hydra.run.dir={runs / 'fsdp_lora_other'}"],
                            cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "this LoRA checkpoint was trained on another base model" in result.stdout + result.stderr
    assert not (runs / "fsdp_lora_other" / "csv" / "metrics.csv").is_file()
    no_lora = subprocess.run([sys.executable, "train.py", *FSDP, *data, f"ckpt_path={ckpt}",
                              f"hydra.run.dir={runs / 'fsdp_lora_as_full'}"],
                             cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert no_lora.returncode != 0
    assert "was written by a LoRA run (its base left out)" in no_lora.stdout + no_lora.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A ~40M-parameter Llama saved as a Hugging Face folder in bfloat16 (as most hub checkpoints
    are; a run trains it in float32, 166 MB), with the byte-level tokenizer: big enough for
    whole-model copies to show in a rank's memory. Returns the folder and the float32 size."""
    from curio.export import export_hf
    from curio.models import build_causal_lm, byte_level_tokenizer

    folder = tmp_path_factory.mktemp("big") / "hf"
    torch.manual_seed(0)
    model = build_causal_lm({"model_type": "llama", "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1536,
                             "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4,
                             "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": 258, "pad_token_id": 256})
    export_hf(model.to(torch.bfloat16), byte_level_tokenizer("chatml"), folder)
    return folder, sum(p.numel() * 4 for p in model.parameters())


@pytest.mark.parametrize(("lora", "saving"), [([], 1.0), (LORA, 0.4)], ids=["full", "lora"])
def test_fsdp_ranks_load_only_their_shards_of_a_checkpoint(runs, repo_root, data, checkpoint, lora, saving):
    """Under trainer=fsdp a checkpoint is built on the meta device and each rank reads its own rows:
    the run equals the one that loads the whole model on every rank, and each rank's peak memory at
    the start of training is lower by at least ``saving`` x the model's float32 size. Full fine-tuning:
    the whole path holds a student and a teacher copy, the sharded path half of each (measured
    1.4x). LoRA: one model, whole vs half, its adapters and the teacher's adapter drawn from the seed
    and their names (measured 0.6x: the file pages each path reads count too)."""
    folder, model_bytes = checkpoint
    base = [o for o in FSDP if not o.startswith(("model=", "model.net.config", "callbacks.model_checkpoint"))] + data + [
        "model=export", f"model.path={folder}", "trainer.max_steps=2", "~callbacks.hf_export", "data.val_size=0",
        "~callbacks.model_checkpoint", *lora]
    peaks, reset, tag = {}, True, "lora_" if lora else ""
    for name, extra in (("meta", []), ("whole", ["model.net.init_device=cpu"])):
        rss = runs / f"{tag}{name}_rss"
        probe = ["+callbacks.rss._target_=tests.memory_probe.PeakRSSAtTrainStart", f"+callbacks.rss.out={rss}"]
        run_train(base + extra + probe, runs / f"load_{tag}{name}", repo_root)
        measured = [json.loads((rss / f"rank{r}.json").read_text()) for r in (0, 1)]
        peaks[name] = [rank["peak_rss"] for rank in measured]
        reset = reset and all(rank["reset"] for rank in measured)
    got, want = curves(runs / f"load_{tag}meta"), curves(runs / f"load_{tag}whole")
    for key in ("train/loss", "train/logq", "train/grad_norm"):
        assert got[key] == want[key], key
    if lora and not reset:  # LoRA's saving (one model) hides under the imports' peak unless reset
        warnings.warn("the kernel refused to reset the peak RSS: LoRA's memory saving not checked")
        return
    for rank in (0, 1):
        assert peaks["meta"][rank] < peaks["whole"][rank] - saving * model_bytes, (peaks, model_bytes)
