"""End-to-end training on the tiny model: loss goes down, export reloads, resume, aggregation."""

import csv
import math
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from curio.config import group_options
from curio.train import train


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def column(rows, key):
    return [float(r[key]) for r in rows if r.get(key)]


def test_short_run_lowers_loss_and_exports_a_loadable_checkpoint(tmp_path, compose_cfg, fast):
    cfg = compose_cfg(fast + ["trainer.max_steps=12", "data.val_size=0"], tmp_path)
    train(cfg)
    losses = column(read_metrics(tmp_path), "train/loss")
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses
    rows = read_metrics(tmp_path)
    for key in ("train/ce", "train/entropy", "train/lr", "train/grad_norm", "train/tokens_per_sec"):
        assert column(rows, key), key

    export = tmp_path / "hf"
    model = AutoModelForCausalLM.from_pretrained(export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    # The export equals the trained weights: compare with the last checkpoint's state dict.
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    trained = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    reference = AutoModelForCausalLM.from_config(model.config)
    reference.load_state_dict(trained)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference.eval()(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("loss", group_options("loss"))
def test_every_loss_trains_on_the_embedded_default(tmp_path, compose_cfg, loss):
    """`python train.py loss=<each>` on the tiny world (2 steps): finite losses, a step taken, and
    the teacher the loss reads (or none)."""
    cfg = compose_cfg([f"loss={loss}", "trainer.max_steps=2", "~callbacks.progress_bar", "~callbacks.model_checkpoint",
                       "trainer.enable_model_summary=false"], tmp_path)
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and metrics["train/grad_norm"] > 0
    assert len(column(read_metrics(tmp_path), "train/loss")) == 2


def test_validation_loss_is_logged(tmp_path, compose_cfg, fast):
    train(compose_cfg(fast, tmp_path))
    val = column(read_metrics(tmp_path), "val/loss")
    assert len(val) == 2 and all(v > 0 for v in val)


def test_resume_from_checkpoint_continues_the_run(tmp_path, compose_cfg, fast):
    first = tmp_path / "first"
    train(compose_cfg(fast + ["callbacks.model_checkpoint.save_top_k=-1"], first))
    ckpt = first / "checkpoints" / "step000002.ckpt"
    assert ckpt.is_file()
    second = tmp_path / "second"
    train(compose_cfg(fast + [f"ckpt_path={ckpt}"], second))
    steps = [int(r["step"]) for r in read_metrics(second) if r.get("train/loss")]
    assert steps == [2, 3]  # picks up after the checkpoint's two optimizer steps
    saved = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4


class GradCapture(L.Callback):
    def __init__(self):
        self.grads = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in pl_module.model.named_parameters()}


def first_step_grads(compose_cfg, fast, tmp_path, overrides):
    cfg = compose_cfg(fast + ["trainer.max_steps=1", "data.val_size=0"] + overrides, tmp_path)
    capture = GradCapture()
    from hydra.utils import instantiate

    from curio.module import SFTModule

    L.seed_everything(0)
    tokenizer = instantiate(cfg.model.tokenizer)
    dm = instantiate(cfg.data, tokenizer=tokenizer)
    module = SFTModule(instantiate(cfg.model.net), instantiate(cfg.loss), instantiate(cfg.optim),
                       partial(instantiate(cfg.sched), total_steps=1), aggregation=cfg.module.aggregation)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[capture],
                        accumulate_grad_batches=cfg.trainer.accumulate_grad_batches)
    trainer.fit(module, datamodule=dm)
    return capture.grads


def test_step_token_mean_is_independent_of_the_accumulation_layout(tmp_path, compose_cfg, fast):
    def grads(name, overrides):
        return first_step_grads(compose_cfg, fast, tmp_path / name, overrides)

    one = grads("a", ["data.micro_batch_size=4", "trainer.accumulate_grad_batches=1"])
    two = grads("b", ["data.micro_batch_size=2", "trainer.accumulate_grad_batches=2"])
    four = grads("c", ["data.micro_batch_size=1", "trainer.accumulate_grad_batches=4"])
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(four[name], one[name], rtol=1e-5, atol=1e-7)
    # The authors' per-micro-batch mean weights tokens differently as soon as lengths differ
    # (length grouping off, so the window mixes lengths).
    mixed = ["data.micro_batch_size=1", "trainer.accumulate_grad_batches=4", "data.group_by_length=false"]
    one = grads("e", mixed)
    micro = grads("d", mixed + ["module.aggregation=micro_batch_token_mean"])
    assert any(not torch.allclose(micro[n], one[n], rtol=1e-4) for n in one)


def run_cli(args, cwd, timeout=300):
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args", [["loss=nope"], ["model=nope", "trainer.max_steps=1"]])
def test_cli_unknown_option_is_one_line(repo_root, args):
    result = run_cli(args, repo_root, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and args[0] in lines[0] and "choose one of" in lines[0], result.stderr


def test_cli_missing_data_file_is_one_line_before_the_model_loads(repo_root, tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = run_cli(["data=jsonl", f"data.train={missing}", f"hydra.run.dir={tmp_path / 'run'}"], repo_root)
    assert result.returncode == 2, result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and str(missing) in errors[0] and "Traceback" not in result.stderr


def test_cli_multirun_gives_each_job_its_own_folder(repo_root, tmp_path, fast):
    overrides = [o for o in fast if not o.startswith(("trainer.max_steps", "~callbacks", "optim.lr"))]
    result = run_cli(["-m", "loss=ce", "optim.lr=1e-5,2e-5", "trainer.max_steps=2", *overrides,
                      f"hydra.sweep.dir={tmp_path}"], repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    lrs = set()
    for job in jobs:
        assert (job / "hf" / "model.safetensors").is_file()
        lrs.add((job / "config_resolved.yaml").read_text().split("lr: ")[1].split("\n")[0])
    assert lrs == {"1.0e-05", "2.0e-05"}
