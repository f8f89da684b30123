"""The teacher is saved in and restored from checkpoints (spec section 4).

A resumed run must have the teacher it would have had without the interruption: the saved copy,
not a fresh copy of the student taken at resume.
"""

from pathlib import Path

import lightning as L
import pytest
import torch

from curio.train import train

TEACHER = "teacher.model."
STUDENT = "model."


class CaptureAtTrainStart(L.Callback):
    """Saves the student's and the teacher's weights as training starts (after any restore)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save({
            "student": clone(pl_module.model.state_dict()),
            "teacher": clone(pl_module.teacher.model.state_dict()),
            "student_params": len(list(pl_module.model.parameters())),
            "trainable_params": sum(p.requires_grad for p in pl_module.parameters()),
        }, self.path)


def clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def run(compose_cfg, fast: list[str], run_dir: Path, overrides: list[str]) -> dict:
    """Train with a lagged teacher synced every 2 steps (before steps 3, 5, ...); return the capture."""
    capture = run_dir / "capture.pt"
    cfg = compose_cfg(fast + [
        "loss=curio", "teacher=lagged", "teacher.sync_every=2", "trainer.max_steps=6", "data.val_size=0",
        "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.model_checkpoint.save_top_k=-1",
        "~callbacks.hf_export",
        f"+callbacks.capture._target_={__name__}.CaptureAtTrainStart", f"+callbacks.capture.path={capture}",
        *overrides,
    ], run_dir)
    train(cfg)
    return torch.load(capture, weights_only=True)


def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def assert_all_differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    same = [name for name in a if torch.equal(a[name], b[name])]
    assert not same, same


@pytest.fixture(scope="module")
def runs(tmp_path_factory, compose_cfg, fast):
    """Run A: 6 steps from scratch. Run B: resumed from A's step-4 checkpoint up to step 6."""
    root = tmp_path_factory.mktemp("teacher_ckpt")
    a_start = run(compose_cfg, fast, root / "a", [])
    ckpt = root / "a" / "checkpoints" / "step000004.ckpt"
    b_start = run(compose_cfg, fast, root / "b", [f"ckpt_path={ckpt}"])
    return root, a_start, b_start


def test_checkpoint_holds_the_synced_teacher(runs):
    root, a_start, _ = runs
    ckpt2 = load(root / "a" / "checkpoints" / "step000002.ckpt")["state_dict"]
    ckpt4 = load(root / "a" / "checkpoints" / "step000004.ckpt")["state_dict"]
    teacher, student = part(ckpt4, TEACHER), part(ckpt4, STUDENT)
    assert teacher and teacher.keys() == student.keys()
    assert_all_differ(teacher, student)  # a lagged teacher, not the student
    assert_all_differ(teacher, a_start["student"])  # synced: no longer the start model
    # Before step 2 the teacher is the start model; the step-3 sync blends in the student after 2 steps.
    assert_same(part(ckpt2, TEACHER), a_start["student"])
    for name, value in teacher.items():
        expected = torch.lerp(a_start["student"][name], part(ckpt2, STUDENT)[name], 0.99)
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7, msg=name)


def test_resume_restores_the_saved_teacher_not_a_fresh_copy(runs):
    root, _, b_start = runs
    ckpt4 = load(root / "a" / "checkpoints" / "step000004.ckpt")["state_dict"]
    assert_same(b_start["student"], part(ckpt4, STUDENT))
    assert_same(b_start["teacher"], part(ckpt4, TEACHER))
    assert_all_differ(b_start["teacher"], b_start["student"])
    # The step-5 sync needs only the step-4 teacher and student, so the resumed run ends with the
    # teacher the uninterrupted run had.
    a6 = load(root / "a" / "checkpoints" / "step000006.ckpt")
    b6 = load(root / "b" / "checkpoints" / "step000006.ckpt")
    assert a6["global_step"] == b6["global_step"] == 6
    assert_same(part(b6["state_dict"], TEACHER), part(a6["state_dict"], TEACHER))


def test_teacher_is_not_in_the_optimizer(runs):
    root, a_start, _ = runs
    n_student = a_start["student_params"]
    assert a_start["trainable_params"] == n_student  # the teacher's copy is frozen
    optimizer = load(root / "a" / "checkpoints" / "step000004.ckpt")["optimizer_states"][0]
    assert sum(len(group["params"]) for group in optimizer["param_groups"]) == n_student
    assert len(optimizer["state"]) == n_student
