"""Teacher modes and the sync schedule (spec section 4) on a tiny Llama."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

import curio.teacher.sync as sync
from curio.losses import CurioLoss, LossInputs, StudentChunk
from curio.teacher import EmaTeacher, FrozenTeacher, LaggedTeacher, LiveTeacher, lerp_
from curio.temperature import EntropyGuidedTemperature


def tiny_llama() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def perturb_(model: nn.Module) -> None:
    """What an optimizer step would do: move every weight."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)


def assert_teacher_equals(teacher: nn.Module, expected: dict[str, torch.Tensor], **tol) -> None:
    for name, value in teacher.state_dict().items():
        torch.testing.assert_close(value, expected[name].to(value.dtype), **tol, msg=name)


def test_lagged_schedule() -> None:
    lagged = LaggedTeacher()
    assert [s for s in range(1, 22) if lagged.is_sync_step(s)] == [6, 11, 16, 21]
    assert [s for s in range(1, 6) if EmaTeacher().is_sync_step(s)] == [2, 3, 4, 5]


@pytest.mark.parametrize(("sync_every", "alpha", "tolerance"), [
    (5, 0.99, {"rtol": 1e-6, "atol": 1e-7}),  # teacher=lagged: the start model, then mostly the student
    (8, 1.0, {"rtol": 0, "atol": 0}),         # teacher=snapshot (PSFT's p_old): a bit-exact copy
])
def test_lagged_teacher_is_the_start_model_until_its_first_sync(sync_every, alpha, tolerance) -> None:
    student = tiny_llama()
    start = snapshot(student)
    teacher = LaggedTeacher(sync_every=sync_every, alpha=alpha)
    teacher.attach(student)
    for step in range(1, sync_every + 1):
        assert not teacher.before_optimizer_step(step, student)
        assert_teacher_equals(teacher.model, start, rtol=0, atol=0)
        perturb_(student)  # the optimizer step
    current = snapshot(student)
    assert teacher.before_optimizer_step(sync_every + 1, student)
    expected = current if alpha == 1.0 else {k: (1 - alpha) * start[k] + alpha * current[k] for k in start}
    assert_teacher_equals(teacher.model, expected, **tolerance)
    # A second call for the same step (e.g. another micro-batch) does not sync again.
    assert not teacher.before_optimizer_step(sync_every + 1, student)
    assert_teacher_equals(teacher.model, expected, **tolerance)


def test_ema_direction() -> None:
    student = tiny_llama()
    start = snapshot(student)
    teacher = EmaTeacher(alpha=0.01)
    teacher.attach(student)
    assert not teacher.before_optimizer_step(1, student)
    perturb_(student)
    current = snapshot(student)
    assert teacher.before_optimizer_step(2, student)
    expected = {k: 0.99 * start[k] + 0.01 * current[k] for k in start}
    assert_teacher_equals(teacher.model, expected, rtol=1e-6, atol=1e-7)


def test_frozen_never_moves() -> None:
    student = tiny_llama()
    start = snapshot(student)
    teacher = FrozenTeacher()
    teacher.attach(student)
    for step in range(1, 12):
        perturb_(student)
        assert not teacher.before_optimizer_step(step, student)
    assert_teacher_equals(teacher.model, start, rtol=0, atol=0)


class Holder(nn.Module):
    """Stands in for the LightningModule: student and teacher as submodules."""

    def __init__(self, teacher: nn.Module):
        super().__init__()
        self.model = tiny_llama()
        self.teacher = teacher
        teacher.attach(self.model)


def test_teacher_is_frozen_in_eval_and_in_the_state_dict() -> None:
    holder = Holder(LaggedTeacher())
    holder.train()
    assert holder.model.training and not holder.teacher.model.training
    assert holder.teacher.model is not None
    teacher_params = {id(p) for p in holder.teacher.parameters()}
    assert teacher_params and all(not p.requires_grad for p in holder.teacher.parameters())
    assert not teacher_params & {id(p) for p in holder.parameters() if p.requires_grad}
    keys = holder.state_dict().keys()
    assert "teacher.model.lm_head.weight" in keys and "model.lm_head.weight" in keys
    # A fresh module restores the teacher's weights from the checkpoint.
    saved = holder.state_dict()
    restored = Holder(LaggedTeacher())
    restored.load_state_dict(saved)
    prefix = "teacher.model."
    saved_teacher = {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}
    assert_teacher_equals(restored.teacher.model, saved_teacher, rtol=0, atol=0)


def test_curio_loss_with_a_teacher_trains_only_the_student() -> None:
    holder = Holder(LaggedTeacher())
    ids = torch.randint(64, (2, 7))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[:, :3] = False  # the prompt
    hidden = holder.model.base_model(input_ids=ids).last_hidden_state[mask]
    teacher = holder.teacher.at_loss_positions({"input_ids": ids}, mask, hidden, holder.model.lm_head)
    loss = CurioLoss(EntropyGuidedTemperature(), chunk_size=3)(
        LossInputs(hidden=hidden, targets=ids[mask], head=holder.model.lm_head, teacher=teacher)
    )
    loss.loss_sum.backward()
    assert all(p.grad is not None for p in holder.model.parameters())
    assert all(p.grad is None for p in holder.teacher.parameters())
    # Every token is heated by at least tau_min.
    assert (loss.token_metrics["tau"] >= 1.1).all()


def test_copy_teacher_logits_at_the_loss_positions() -> None:
    student = tiny_llama().eval()
    teacher = LaggedTeacher()
    teacher.attach(student)
    ids = torch.randint(64, (2, 7))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    mask = torch.rand(2, 7) > 0.3
    view = teacher.at_loss_positions(inputs, mask, torch.empty(0), student.lm_head)
    chunk = view(slice(1, 4), None)
    assert chunk.logits.shape == (3, 64) and chunk.entropy is None and not chunk.logits.requires_grad
    with torch.no_grad():
        expected = student(**inputs).logits[mask][1:4]
    torch.testing.assert_close(chunk.logits, expected)
    assert teacher.model.lm_head is not student.lm_head


def test_bfloat16_teacher() -> None:
    student = tiny_llama()
    teacher = LaggedTeacher(sync_every=1, alpha=0.99, dtype="bfloat16")
    teacher.attach(student)
    assert all(p.dtype == torch.bfloat16 for p in teacher.model.parameters())
    assert teacher.model.model.rotary_emb.inv_freq.dtype == torch.float32  # buffers keep theirs
    ids = torch.randint(64, (1, 5))
    view = teacher.at_loss_positions({"input_ids": ids}, torch.ones(1, 5, dtype=torch.bool), torch.empty(0), None)
    assert view.hidden.dtype == torch.bfloat16
    assert view(slice(0, 5), None).logits.dtype == torch.float32
    before = {k: v.float() for k, v in snapshot(teacher.model).items()}
    perturb_(student)
    assert teacher.before_optimizer_step(2, student)
    for name, value in teacher.model.state_dict().items():
        exact = before[name] + 0.99 * (student.state_dict()[name].float() - before[name])
        # One rounding to bf16 at the end: equal up to one bf16 ulp.
        torch.testing.assert_close(value, exact.to(torch.bfloat16), rtol=2**-7, atol=1e-6, msg=name)


def test_mixed_dtype_lerp_in_small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MIXED_BUCKET_NUMEL", 10)
    targets = [torch.randn(n).to(torch.bfloat16) for n in (3, 8, 25, 4)] + [torch.randn(6)]
    sources = [torch.randn(t.shape) for t in targets]
    expected = [(t.float() + 0.3 * (s - t.float())).to(t.dtype) for t, s in zip(targets, sources)]
    lerp_(targets, sources, 0.3)
    for t, e in zip(targets, expected):
        torch.testing.assert_close(t, e, rtol=0, atol=1e-6)


def test_mismatched_student_is_refused() -> None:
    teacher = LaggedTeacher(sync_every=1)
    teacher.attach(tiny_llama())
    with pytest.raises(ValueError, match="parameters differ"):
        teacher.before_optimizer_step(2, nn.Linear(2, 2))


def test_live_teacher_holds_nothing_and_reads_the_student() -> None:
    teacher = LiveTeacher()
    student = tiny_llama()
    teacher.attach(student)
    assert not teacher.before_optimizer_step(6, student)
    assert len(teacher.state_dict()) == 0 and len(list(teacher.parameters())) == 0
    hidden = torch.randn(5, 32, requires_grad=True)
    view = teacher.at_loss_positions({}, torch.ones(1, 5, dtype=torch.bool), hidden, student.lm_head)
    student_chunk = StudentChunk(student.lm_head, hidden, {})
    chunk = view(slice(0, 5), student_chunk)
    assert torch.equal(chunk.logits, student_chunk.logits) and chunk.entropy is student_chunk.entropy
    assert not chunk.logits.requires_grad and student_chunk.logits.requires_grad


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: LaggedTeacher(sync_every=0), "teacher.sync_every must be >= 1"),
        (lambda: LaggedTeacher(alpha=1.5), r"teacher.alpha must be in \[0, 1\]"),
        (lambda: EmaTeacher(alpha=-0.1), r"teacher.alpha must be in \[0, 1\]"),
        (lambda: FrozenTeacher(dtype="int8"), "teacher.dtype='int8': choose null or one of"),
    ],
)
def test_validation(factory, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_unattached_teacher_explains() -> None:
    teacher = LaggedTeacher()
    assert teacher.model is None
    with pytest.raises(RuntimeError, match="before teacher.attach"):
        teacher.at_loss_positions({"input_ids": torch.zeros(1, 2, dtype=torch.long)}, None, None, None)
    with pytest.raises(RuntimeError, match="before teacher.attach"):
        teacher.before_optimizer_step(6, tiny_llama())
