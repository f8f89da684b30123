"""Exact resume: a run killed mid-epoch (SIGKILL, or a pre-emption signal) and resumed with the
documented command ends with the weights of an uninterrupted run (bitwise, on CPU), for vanilla
SFT and for CurioSFT with the lagged teacher."""

import csv
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from curio.callbacks.preemption import PREEMPTED_EXIT_CODE

BASE = [
    "model=tiny", "data=jsonl", "data.val_size=8", "data.micro_batch_size=2",
    "trainer.accumulate_grad_batches=2", "optim.lr=3e-3", "sched.warmup_steps=2", "trainer.max_steps=8",
    "trainer.val_check_interval=6", "callbacks.model_checkpoint.every_n_train_steps=2",
    "callbacks.model_checkpoint.save_top_k=-1", "trainer.enable_model_summary=false",
    "~callbacks.progress_bar", "~callbacks.token_plots",
]
LOSSES = {"ce": ["loss=ce"], "curio-lagged": ["loss=curio", "teacher=lagged", "teacher.sync_every=2"]}


def run(args, cwd):
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def base(sums_jsonl) -> list[str]:
    return [*BASE, f"data.train={sums_jsonl}"]


def history(run_dir) -> list[tuple[str, str]]:
    """``(step, train/loss)`` of every optimizer step in the run's metrics.csv, as written."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [(row["step"], row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


@pytest.fixture(scope="module")
def straight(repo_root, tmp_path_factory, base):
    """Final weights and metric history of uninterrupted runs, per loss."""
    runs = {}
    for name, loss in LOSSES.items():
        run_dir = tmp_path_factory.mktemp(f"straight-{name}")
        result = run(base + loss + [f"hydra.run.dir={run_dir}"], repo_root)
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = (load_file(run_dir / "hf" / "model.safetensors"), history(run_dir))
    return runs


def resume_and_compare(repo_root, run_dir, args, expected):
    # The documented resume command: the same command, the same run dir, ckpt_path=auto.
    result = run(args + [f"hydra.run.dir={run_dir}", "ckpt_path=auto"], repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    weights, metrics = expected
    resumed = load_file(run_dir / "hf" / "model.safetensors")
    assert weights.keys() == resumed.keys()
    for name in weights:
        assert torch.equal(weights[name], resumed[name]), name
    # The metrics file holds the whole run, each optimizer step once, with the values of the
    # uninterrupted run.
    assert history(run_dir) == metrics
    return resumed


@pytest.mark.parametrize("loss", list(LOSSES))
def test_sigkill_then_resume_equals_uninterrupted(repo_root, tmp_path, straight, base, loss):
    args = base + LOSSES[loss]
    # Killed before step 6: after the step-4 checkpoint, mid-epoch (12 of 20 micro-batches done),
    # with a teacher sync (before step 5) to restore.
    kill = ["+callbacks.crash._target_=tests.crash.SigkillAtStep", "+callbacks.crash.step=5"]
    result = run(args + kill + [f"hydra.run.dir={tmp_path}"], repo_root)
    assert result.returncode == -9, result.stderr[-2000:]
    assert not (tmp_path / "hf").exists()
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = resume_and_compare(repo_root, tmp_path, args, straight[loss])
    ckpt4 = torch.load(tmp_path / "checkpoints" / "step000004.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(ckpt4["model.lm_head.weight"], resumed["lm_head.weight"])  # it did move on


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_preemption_signal_saves_a_checkpoint_then_resumes_exactly(repo_root, tmp_path, straight, base, signal_name):
    args = base + LOSSES["ce"]
    # The signal arrives during step 3; periodic checkpoints (every 5) would not have saved it.
    signal = ["+callbacks.crash._target_=tests.crash.SignalAtStep", "+callbacks.crash.step=2",
              f"+callbacks.crash.signal_name={signal_name}", "callbacks.model_checkpoint.every_n_train_steps=5"]
    result = run(args + signal + [f"hydra.run.dir={tmp_path}"], repo_root)
    assert result.returncode == PREEMPTED_EXIT_CODE, result.stderr[-2000:]
    assert "Pre-empted" in result.stdout + result.stderr
    assert not (tmp_path / "hf").exists()  # a pre-empted run does not pose as finished
    # The step in flight finished, then the checkpoint was written at the step boundary.
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    resume_and_compare(repo_root, tmp_path, args + ["callbacks.model_checkpoint.every_n_train_steps=5"],
                       straight["ce"])


#: Two epochs of 10 optimizer steps (40 rows in micro-batches of 4), a checkpoint every 10 steps:
#: each one falls on an epoch's last batch, where Lightning's own ModelCheckpoint writes one that
#: resumes to a run that skips its second epoch and reports success.
EPOCHS = ["trainer.max_steps=-1", "trainer.max_epochs=2", "data.micro_batch_size=4",
          "trainer.accumulate_grad_batches=1", "trainer.val_check_interval=1.0",
          "callbacks.model_checkpoint.every_n_train_steps=10"]


@pytest.fixture(scope="module")
def straight_epochs(repo_root, tmp_path_factory, base):
    run_dir = tmp_path_factory.mktemp("straight-epochs")
    result = run(base + LOSSES["ce"] + EPOCHS + [f"hydra.run.dir={run_dir}"], repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(history(run_dir)) == 20
    return load_file(run_dir / "hf" / "model.safetensors"), history(run_dir)


@pytest.mark.parametrize("stop", [
    ["+callbacks.crash._target_=tests.crash.SigkillAtStep", "+callbacks.crash.step=12"],
    # The signal arrives during the epoch's last step: the checkpoint waits for the epoch's end.
    ["+callbacks.crash._target_=tests.crash.SignalAtStep", "+callbacks.crash.step=9"],
], ids=["sigkill-after-an-epoch-end-checkpoint", "sigterm-in-an-epochs-last-step"])
def test_a_checkpoint_at_an_epochs_end_resumes_the_next_epoch(repo_root, tmp_path, straight_epochs, base, stop):
    args = base + LOSSES["ce"] + EPOCHS
    result = run(args + stop + [f"hydra.run.dir={tmp_path}"], repo_root)
    assert result.returncode in (-9, PREEMPTED_EXIT_CODE), result.stderr[-2000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    resume_and_compare(repo_root, tmp_path, args, straight_epochs)


def test_a_checkpoint_written_at_an_epochs_last_batch_is_refused():
    """What Lightning's own ModelCheckpoint wrote at step 10 of the run above (the loop's batch not
    yet counted as completed), and what the epoch-end checkpoint holds instead."""
    from curio.callbacks.checkpoint import check_resumable
    from curio.errors import ConfigError

    def written(completed: int, last: bool = True) -> dict:
        counts = {"ready": 10, "started": 10, "processed": 10, "completed": completed}
        progress = {"total": counts, "current": counts, "is_last_batch": last}
        return {"global_step": 10, "loops": {"fit_loop": {"epoch_loop.batch_progress": progress}}}

    with pytest.raises(ConfigError, match=r"step 10\) was written at the end of an epoch's last batch"):
        check_resumable(written(completed=9))
    check_resumable(written(completed=10))  # at the epoch's end
    check_resumable(written(completed=9, last=False))  # mid-epoch
    check_resumable({})  # not a Lightning training checkpoint


def test_a_checkpoint_with_other_parts_than_the_run_is_refused_in_one_line():
    """A GRPO checkpoint written with its reference model (rl.reference=true), resumed by a run
    without one, and an SFT checkpoint without a teacher (loss=ce) resumed by one with a teacher:
    each named, instead of Lightning's strict load listing every weight."""
    from torch import nn

    from curio.errors import ConfigError
    from curio.run_state import check_same_parts

    def module(*parts: str) -> nn.Module:
        return nn.ModuleDict({part: nn.Linear(2, 2) for part in parts})

    with_reference = {"global_step": 6, "state_dict": module("model", "reference").state_dict()}
    with pytest.raises(ConfigError, match=r"step 6\) was written with other settings: it holds a reference that "
                                          r"this run does not build \(rl.reference\); resume with"):
        check_same_parts(module("model"), with_reference)
    with pytest.raises(ConfigError, match=r"it has no teacher, which this run builds \(loss / teacher\)"):
        check_same_parts(module("model", "teacher"), {"state_dict": module("model").state_dict()})
    check_same_parts(module("model", "reference"), with_reference)  # the same parts
    check_same_parts(module("model"), {"global_step": 6})  # sharded: its loader checks


def test_a_loop_that_ends_short_fails_before_the_export(repo_root, tmp_path, base):
    """Whatever makes Lightning's loop count epochs that never ran, the run does not export a
    model trained on half its steps and exit 0: it names both counts and keeps its checkpoints.
    Resumed from them, the loop (restored as done) does not even start: still no export."""
    miscount = ["+callbacks.crash._target_=tests.crash.MiscountEpochs"]
    result = run(base + LOSSES["ce"] + EPOCHS + miscount + [f"hydra.run.dir={tmp_path}"], repo_root)
    assert result.returncode != 0
    assert "ended after 10 optimizer steps of the 20 planned" in result.stderr
    assert not (tmp_path / "hf").exists()
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    resumed = run(base + LOSSES["ce"] + EPOCHS + [f"hydra.run.dir={tmp_path}", "ckpt_path=auto"], repo_root)
    assert resumed.returncode != 0 and "ended after 10 optimizer steps of the 20 planned" in resumed.stderr
    assert not (tmp_path / "hf").exists()


def test_a_run_asked_to_stop_early_exports(repo_root, tmp_path, base):
    """A stop a callback asks for (early stopping, ``trainer.max_time``) is not a short run."""
    stop = ["+callbacks.crash._target_=tests.crash.StopAtStep", "+callbacks.crash.step=3"]
    result = run(base + LOSSES["ce"] + EPOCHS + stop + [f"hydra.run.dir={tmp_path}"], repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "hf" / "model.safetensors").exists()
    assert len(history(tmp_path)) == 3
    assert "Stopped at optimizer step 3 of 20: a callback asked to stop" in result.stderr + result.stdout
