"""Sweeps through hydra-submitit-launcher: the SLURM preset composes, and a sweep runs through
submitit's local executor, each job pre-empted once, requeued by submitit and resumed to its export."""

from __future__ import annotations

import csv
import subprocess
import sys

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from safetensors.torch import load_file

from curio.config import CONF_DIR
from curio.train import train


def test_slurm_preset_takes_its_layout_from_the_trainer():
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=fsdp", "trainer.devices=8",
                                          "trainer.num_nodes=2", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert launcher.partition == "gpu" and launcher.max_num_timeout == 3 and launcher.signal_delay_s == 120


def metrics(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_a_local_sweep_is_preempted_requeued_and_resumed_to_its_exports(tmp_path, repo_root, fast, compose_cfg):
    sweep = tmp_path / "sweep"
    preempt = ["+callbacks.preempt._target_=tests.crash.SignalAtStep", "+callbacks.preempt.step=2",
               "+callbacks.preempt.signal_name=SIGUSR2"]  # what submitit sends before a time limit
    result = subprocess.run(
        [sys.executable, "train.py", "-m", "hydra/launcher=local", "seed=0,1", *fast, "ckpt_path=auto", *preempt,
         f"hydra.sweep.dir={sweep}"],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logs = [p.read_text() for p in sweep.glob(".submitit/*/*_log.out")]
    assert len(logs) == 2
    for log in logs:
        assert "Pre-empted (SIGUSR2) at step 3" in log and "Requeued job" in log
    for job in ("0", "1"):
        steps = [int(r["step"]) for r in metrics(sweep / job) if r.get("train/loss")]
        assert steps == [0, 1, 2, 3]  # every optimizer step once: resumed after step 3, not redone
        assert (sweep / job / "hf" / "model.safetensors").is_file()
    # The pre-empted and resumed job ends where an uninterrupted run of the same seed does.
    straight = tmp_path / "straight"
    train(compose_cfg(fast + ["seed=0"], straight))
    got, want = load_file(sweep / "0" / "hf" / "model.safetensors"), load_file(straight / "hf" / "model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
