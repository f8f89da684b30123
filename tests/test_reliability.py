"""Typos fail fast as one line; checkpoint writes are atomic; secrets stay out of outputs;
non-finite steps are skipped, counted, and stop a diverged run with its last good state saved."""

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

import curio.train as curio_train
from curio.checkpoint_io import AtomicCheckpointIO
from curio.errors import ConfigError, TrainingDiverged, UserError
from curio.losses.ce import CrossEntropyLoss
from curio.resume import resolve_ckpt_path
from train import precheck

# Typical mistakes, each caught before Hydra starts: typos by the command-line check alone (no torch
# import), values by the constructors of the run's cheap parts (loss, temperature, teacher,
# optimizer, schedule, aggregation), built once with torch the only heavy import.
PRECHECK_MISTAKES = {
    "loss=cruio": "choose one of asft, ce, curio, dft, eaft, entropy, gem, psft, sed, sft_kl",
    "optim.lrr=1e-5": "did you mean optim.lr?",
    "trainer.max_step=10": "did you mean trainer.max_steps",
    "teacher=null": "teacher=null: a config group takes one of its options",
    "data=jsonl": "data.train: required",
    "data.train=no/such/file.jsonl": "data.train: no such file or folder",
    "loss=curio temp.tau_min=2": "temp.tau_min (2) must be <= temp.tau_max (1.5)",
    "optim.lr=-1": "optim: Invalid learning rate: -1",
    "optim.betas=[0.9,1.5]": "optim: Invalid beta parameter at index 1: 1.5",
    "loss=curio teacher.alpha=1.5": "teacher.alpha must be in [0, 1], got 1.5",
    "loss=curio teacher.sync_every=0": "teacher.sync_every must be >= 1, got 0",
    "loss=curio temp.top_k=0": "temp.top_k must be >= 1, got 0",
    "loss=curio ~teacher": "CurioLoss reads a teacher, but the config has none",
    "sched.horizon_multiplier=0.5": "sched.horizon_multiplier=0.5: must be >= 1",
    "module.aggregation=global": "module.aggregation='global': choose one of step_token_mean",
    "model.net.dtype=float33": "model.net.dtype='float33': choose null or one of float32",
    "seed=abc": "seed='abc': not a number (the default is 0)",
    "optim.lr=abc": "optim.lr='abc': not a number",
    "module.gradient_checkpointing=yes": "module.gradient_checkpointing='yes': must be true or false",
    "optim.learning_rate=1e-5": "optim.learning_rate: no such key in optim; did you mean optim.lr?",
    "ckpt_path=no/such.ckpt": "ckpt_path=no/such.ckpt: no such file or folder",
    f"trainer.devices={os.cpu_count() + 1}": f"CPU processes on {os.cpu_count()} core(s) would only contend",
    f"hydra.run.dir={Path(__file__).parent / 'assets' / 'sums_messages.jsonl' / 'run'}": "cannot create the run dir, ",
}
if not torch.cuda.is_available():
    PRECHECK_MISTAKES["trainer=gpu"] = "trainer.accelerator=gpu: no CUDA GPU is visible here"
    PRECHECK_MISTAKES["trainer=fsdp"] = "trainer.accelerator=gpu: no CUDA GPU is visible here"


@pytest.mark.parametrize(("overrides", "needle"), PRECHECK_MISTAKES.items(), ids=list(PRECHECK_MISTAKES))
def test_mistake_is_one_line_before_lightning_data_or_model(overrides, needle):
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        precheck(overrides.split())
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert needle in message and "\n" not in message, message


def test_a_value_error_exits_2_before_lightning_is_imported(repo_root):
    """The command line as a user runs it: one line on stderr, exit 2, and Lightning never loaded."""
    probe = ("import atexit, runpy, sys; "
             "atexit.register(lambda: print('lightning loaded:', 'lightning' in sys.modules, file=sys.stderr)); "
             "sys.argv = ['train.py', 'loss=curio', 'teacher.alpha=1.5']; runpy.run_path('train.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: teacher.alpha must be in [0, 1], got 1.5", "lightning loaded: False"], result.stderr


@pytest.mark.parametrize(("override", "needle"), [
    ("+loss.betta=1", "loss: TokenLoss.__init__() got an unexpected keyword argument 'betta'"),
    ("trainer.precision=bf17", "trainer: Precision 'bf17' is invalid"),
    ("data.micro_batch_size=41", "one optimizer step needs 41 sequences"),
    ("trainer.val_check_interval=500", "trainer.val_check_interval=500: an epoch has only"),
    ("seed=null", "seed=null: must be an integer"),
    ("+trainer.limit_train_batches=5", "trainer.limit_train_batches=5: curio's runs train whole epochs"),
    ("trainer.max_steps=0", "trainer.max_steps=0, trainer.max_epochs=3: the run would take no optimizer step"),
])
def test_constructor_errors_name_the_key_and_come_before_the_model(monkeypatch, tmp_path, compose_cfg, fast,
                                                                   override, needle):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be built")

    monkeypatch.setattr("curio.models.build_causal_lm", no_model)
    cfg = compose_cfg(fast + [override], tmp_path)
    with pytest.raises(ConfigError) as info:
        curio_train.train(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_cli_typo_prints_one_line_in_about_a_second(repo_root):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "train.py", "optim.lrr=1e-5"], cwd=repo_root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and time.perf_counter() - start < 20
    assert result.stderr.strip() == "error: optim.lrr: no such key in optim; did you mean optim.lr? " \
                                    "(to add a new key use +optim.lrr=...)"


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def crash_mid_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(UserError, match=f"cannot write checkpoint {path}: No space left on device"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    loaded = io.load_checkpoint(path)
    assert loaded["step"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_checkpoints_are_staged_beside_their_target_not_in_tmpdir(tmp_path, monkeypatch):
    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setenv("TMPDIR", str(staging))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append((Path(a), Path(b))), real_replace(a, b)))
    path = tmp_path / "run" / "checkpoints" / "step000002.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1000)}, path)
    assert seen == [(path.with_name("step000002.ckpt.tmp"), path)] and path.is_file()
    assert not list(staging.iterdir())


def test_auto_resumes_the_newest_complete_checkpoint_and_clears_partial_ones(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert resolve_ckpt_path("auto", tmp_path) is None
    for i, name in enumerate(["step000002.ckpt", "step000004.ckpt"]):
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (1000 + i, 1000 + i))
    (folder / "step000006.ckpt.tmp").write_bytes(b"partial")  # a save killed mid-write
    (folder / "last.ckpt.old").mkdir()  # a sharded save killed mid-swap
    # No last.ckpt yet (killed before it was first written): the newest periodic one.
    assert resolve_ckpt_path("auto", tmp_path) == str(folder / "step000004.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["step000002.ckpt", "step000004.ckpt"]
    (folder / "last.ckpt").write_bytes(b"x")
    assert resolve_ckpt_path("auto", tmp_path) == str(folder / "last.ckpt")
    assert resolve_ckpt_path(None, tmp_path) is None


def test_secrets_never_reach_saved_configs_or_logs(tmp_path, compose_cfg, fast):
    secret = "hf_SuperSecret123"
    cfg = compose_cfg(fast + ["trainer.max_steps=1", f"+hub_token={secret}", f"+wandb_api_key={secret}"], tmp_path)
    curio_train.train(cfg)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".csv", ".log", ".json", ".txt"):
            assert secret not in path.read_text(errors="ignore"), path
    assert "hub_token: '***'" in (tmp_path / "config_resolved.yaml").read_text()
    assert not (tmp_path / ".hydra").exists()


def test_trust_remote_code_is_off_in_every_hub_model_config(compose_cfg, tmp_path):
    for name in ("qwen2_5_math_1_5b", "qwen2_5_math_7b"):
        cfg = compose_cfg([f"model={name}"], tmp_path)
        assert cfg.model.net.trust_remote_code is False and cfg.model.tokenizer.trust_remote_code is False


def test_non_finite_steps_are_skipped_counted_and_stop_the_run(tmp_path, monkeypatch, compose_cfg, fast):
    calls = {"n": 0}
    real = CrossEntropyLoss.token_losses

    def nan_after_first_step(self, logits, targets, teacher):
        loss, metrics = real(self, logits, targets, teacher)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 1 else loss), metrics

    monkeypatch.setattr(CrossEntropyLoss, "token_losses", nan_after_first_step)
    cfg = compose_cfg(fast + ["trainer.max_steps=10", "module.max_consecutive_skips=3", "data.val_size=0",
                                 "callbacks.model_checkpoint.every_n_train_steps=1",
                                 "callbacks.model_checkpoint.save_top_k=-1"], tmp_path)
    with pytest.raises(TrainingDiverged, match=r"3 optimizer steps in a row.*last finite step \(largest \|w\| = "
                                               r"[0-9.]+\) to .*last-good.ckpt"):
        curio_train.train(cfg)
    good = torch.load(tmp_path / "checkpoints" / "last-good.ckpt", weights_only=True)
    after_step_1 = torch.load(tmp_path / "checkpoints" / "step000001.ckpt", weights_only=True)
    # Skipped steps changed nothing: the weights are still those after the one good step.
    for name, value in after_step_1["state_dict"].items():
        assert torch.equal(good["state_dict"][name], value), name
    assert good["curio"]["skipped_steps"] == 3
    metrics = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    skipped = [row.split(",")[header.index("train/skipped_steps")] for row in metrics[1:]]
    # The stopping step raises before Lightning flushes its row; the checkpoint above has its count.
    assert [float(s) for s in skipped if s] == [0.0, 1.0, 2.0]


    # Resumed from last-good with a lower lr, the run goes on even though its first step is not
    # finite yet: the skip streak of the run that stopped does not carry over.
    calls["n"] = 0

    def nan_at_first_step(self, logits, targets, teacher):
        loss, metrics = real(self, logits, targets, teacher)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 1 else loss), metrics

    monkeypatch.setattr(CrossEntropyLoss, "token_losses", nan_at_first_step)
    resumed = compose_cfg(fast + ["trainer.max_steps=6", "module.max_consecutive_skips=3", "data.val_size=0",
                                  "optim.lr=1e-3", f"ckpt_path={tmp_path / 'checkpoints' / 'last-good.ckpt'}"],
                          tmp_path / "resumed")
    curio_train.train(resumed)
    assert (tmp_path / "resumed" / "hf" / "model.safetensors").is_file()


def test_a_run_dir_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch, compose_cfg, fast):
    from curio.cli import save_run_config

    cfg = compose_cfg(fast, tmp_path / "run")
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(UserError, match=f"run dir {tmp_path / 'run'}: cannot write there \\(No space left on device\\)"):
        save_run_config(cfg, tmp_path / "run")
    monkeypatch.setattr(os, "fsync", real_fsync)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write there"):
        save_run_config(cfg, blocker / "run")


def test_a_finished_run_resumed_writes_its_missing_export(tmp_path, compose_cfg, fast):
    """Killed during the final export: the documented resume command finishes the job."""
    cfg = compose_cfg(fast + ["trainer.max_steps=2", "data.val_size=0"], tmp_path)
    curio_train.train(cfg)
    exported = (tmp_path / "hf" / "model.safetensors").read_bytes()
    shutil.rmtree(tmp_path / "hf")
    metrics = (tmp_path / "csv" / "metrics.csv").read_text()
    curio_train.train(compose_cfg(fast + ["trainer.max_steps=2", "data.val_size=0", "ckpt_path=auto"], tmp_path))
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == exported
    assert (tmp_path / "csv" / "metrics.csv").read_text() == metrics  # nothing logged, nothing lost


def test_mandatory_keys_of_a_chosen_group_can_be_set(tmp_path):
    # data=jsonl leaves data.train as ??? (mandatory): setting it is not a typo.
    precheck(["data=jsonl", f"data.train={tmp_path}"])
