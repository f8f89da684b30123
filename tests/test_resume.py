"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends with the weights of an
uninterrupted run (bitwise, on CPU), for vanilla SFT and for CurioSFT with the lagged teacher."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import SUMS

BASE = [
    "model=tiny", "data=jsonl", f"data.train={SUMS}", "data.val_size=8", "data.micro_batch_size=2",
    "trainer.accumulate_grad_batches=2", "optim.lr=3e-3", "sched.warmup_steps=2", "trainer.max_steps=8",
    "trainer.val_check_interval=6", "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.model_checkpoint.save_top_k=-1",
    "trainer.enable_model_summary=false", "~callbacks.progress_bar", "~callbacks.token_plots",
]


def run(args, cwd):
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def final_weights(run_dir):
    return load_file(run_dir / "hf" / "model.safetensors")


@pytest.mark.parametrize("loss", [["loss=ce"], ["loss=curio", "teacher=lagged", "teacher.sync_every=2"]],
                         ids=["ce", "curio-lagged"])
def test_sigkill_then_resume_equals_uninterrupted(repo_root, tmp_path, loss):
    args = BASE + loss
    straight = tmp_path / "straight"
    result = run(args + [f"hydra.run.dir={straight}"], repo_root)
    assert result.returncode == 0, result.stderr[-2000:]

    crashed = tmp_path / "crashed"
    # Killed before step 6: after the step-4 checkpoint, in the middle of the epoch (12 micro-batches
    # of 20 are done) and with a teacher sync (before step 5) to restore.
    kill = ["+callbacks.crash._target_=tests.crash.SigkillAtStep", "+callbacks.crash.step=5"]
    result = run(args + kill + [f"hydra.run.dir={crashed}"], repo_root)
    assert result.returncode == -9, result.stderr[-2000:]
    assert not (crashed / "hf").exists() and (crashed / "checkpoints" / "last.ckpt").is_file()
    assert torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    # The documented resume command: same run dir, ckpt_path=auto.
    result = run(args + [f"hydra.run.dir={crashed}", "ckpt_path=auto"], repo_root)
    assert result.returncode == 0, result.stderr[-2000:]

    expected, resumed = final_weights(straight), final_weights(crashed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    # And the run did move: the weights are not the step-4 ones.
    ckpt4 = torch.load(crashed / "checkpoints" / "step000004.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(ckpt4["model.lm_head.weight"], resumed["lm_head.weight"])
