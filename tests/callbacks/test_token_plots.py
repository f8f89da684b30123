"""The TokenPlots callback writes per-step PNGs of tau and entropies during a tiny run."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger

from curio.callbacks import TokenPlots
from curio.callbacks.token_plots import _subsample
from curio.step_metrics import TokenMetricWindow
from curio.temperature import EntropyGuidedTemperature
from curio.train import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    assert path.stat().st_size > 5_000, path  # a drawn figure, not an empty canvas
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01  # something is drawn


def plot_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "plots").glob("*.png"))


def test_curio_run_writes_tau_and_entropy_plots_every_n_steps(tmp_path, compose_cfg, fast):
    cfg = compose_cfg(fast + ["loss=curio", "callbacks.token_plots.every_n_steps=2", "data.val_size=0",
                                 "~callbacks.model_checkpoint", "~callbacks.hf_export"], tmp_path)
    train(cfg)
    assert plot_files(tmp_path) == [
        "entropy_hist_step000002.png", "entropy_hist_step000004.png",
        "tau_vs_entropy_step000002.png", "tau_vs_entropy_step000004.png",
    ]
    for name in plot_files(tmp_path):
        assert_png(tmp_path / "plots" / name)


def test_ce_run_writes_only_the_entropy_histogram(tmp_path, compose_cfg, fast):
    cfg = compose_cfg(fast + ["loss=ce", "callbacks.token_plots.every_n_steps=3", "data.val_size=0",
                                 "~callbacks.model_checkpoint", "~callbacks.hf_export"], tmp_path)
    train(cfg)
    assert plot_files(tmp_path) == ["entropy_hist_step000003.png"]
    assert_png(tmp_path / "plots" / "entropy_hist_step000003.png")


def test_every_n_steps_must_be_positive():
    with pytest.raises(ValueError, match="every_n_steps"):
        TokenPlots(every_n_steps=0)


class RecordingWandb(WandbLogger):
    """A WandbLogger that records ``log_image`` calls instead of starting a W&B run."""

    def __init__(self):  # no super().__init__: no wandb run, no network
        self.calls = []

    def log_image(self, key, images, step=None, **kwargs):
        self.calls.append((key, images, step))


def test_plots_subsample_and_go_to_wandb(tmp_path):
    window = TokenMetricWindow()
    n = 50_000  # more than max_points: the plot gets a subsample
    teacher_entropy = torch.rand(n) * 4
    tau = 1.1 + 0.4 * torch.sigmoid(2 * (teacher_entropy - 1.2))
    for half in (slice(0, n // 2), slice(n // 2, n)):  # two micro-batches
        metrics = {"tau": tau[half], "teacher_entropy": teacher_entropy[half], "entropy": 0.9 * teacher_entropy[half]}
        window.add(metrics, loss=torch.tensor(1.0), tokens=torch.tensor(n // 2), loss_tokens=torch.tensor(n // 2))
    wandb = RecordingWandb()
    trainer = SimpleNamespace(global_step=9, is_global_zero=True, default_root_dir=str(tmp_path), loggers=[wandb])
    module = SimpleNamespace(train_window=window, loss_fn=SimpleNamespace(temperature=EntropyGuidedTemperature()))
    callback = TokenPlots(every_n_steps=5, max_points=1_000)

    callback.on_before_optimizer_step(trainer, module, optimizer=None)
    assert plot_files(tmp_path) == ["entropy_hist_step000010.png", "tau_vs_entropy_step000010.png"]
    for name in plot_files(tmp_path):
        assert_png(tmp_path / "plots" / name)
    # Logged at the step of that optimizer step's scalar metrics (global_step before the update).
    assert sorted(wandb.calls) == [
        ("plots/entropy_hist", [str(tmp_path / "plots" / "entropy_hist_step000010.png")], 9),
        ("plots/tau_vs_entropy", [str(tmp_path / "plots" / "tau_vs_entropy_step000010.png")], 9),
    ]
    sub = _subsample({"tau": tau}, 1_000)["tau"]
    assert 500 < len(sub) <= 1_000

    trainer.global_step = 10  # step 11: not a plot step, nothing happens
    callback.on_before_optimizer_step(trainer, module, optimizer=None)
    assert len(wandb.calls) == 2 and len(plot_files(tmp_path)) == 2
