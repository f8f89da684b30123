"""Packed batches (curio/data/packing.py): the packs, their layout, and packed == padded for every
loss, in value and gradient."""

from __future__ import annotations

import random

import pytest
import torch

from curio.components import build_objective, build_optimizer
from curio.config import group_options
from curio.data.collate import IGNORE, Collator
from curio.data.packing import PackCollator, pack_rows
from curio.errors import ConfigError
from curio.models import build_causal_lm
from curio.module import SFTModule
from curio.train import train
from tests.test_training import column, read_metrics

PAD = 256


def rows(lengths, seed=0):
    rng = random.Random(seed)
    out = []
    for n in lengths:
        prompt = rng.randint(1, n - 1)
        out.append({"input_ids": [rng.randrange(250) for _ in range(n)], "loss_mask": [0] * prompt + [1] * (n - prompt)})
    return out


def test_packs_hold_every_row_once_within_the_budget():
    lengths = [random.Random(i).randint(3, 90) for i in range(200)]
    packs = pack_rows(lengths, 128)
    assert sorted(i for p in packs for i in p) == list(range(200))
    assert all(sum(lengths[i] for i in p) <= 128 for p in packs)
    assert packs == pack_rows(lengths, 128)  # a pure function of the lengths
    # best fit: at most one pack is less than half full (two such would have been merged)
    assert sum(sum(lengths[i] for i in p) <= 64 for p in packs) <= 1
    assert pack_rows([5, 5, 5], 15) == [[0, 1, 2]] and pack_rows([10, 6, 5], 11) == [[0], [1, 2]]


def test_a_row_longer_than_the_budget_names_the_key():
    with pytest.raises(ConfigError, match=r"data.pack_tokens=8: 2 training row\(s\) are longer \(the longest has 12"):
        pack_rows([5, 9, 12, 3], 8)


def test_packed_layout_restarts_positions_and_never_predicts_across_rows():
    items = rows([5, 3, 4])
    batch = PackCollator(PAD)([items[:2], items[2:]])
    assert batch.input_ids.shape == (2, 8)
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 1, 2, 3]]
    assert batch.attention_mask.tolist() == [[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]]
    assert set(batch.model_inputs) == {"input_ids", "position_ids"}  # no mask: the model builds its own
    padded = Collator(PAD)(items)
    assert batch.labels[0, :5].tolist() == padded.labels[0, :5].tolist()
    assert batch.labels[0, 5:].tolist() == padded.labels[1, :3].tolist()
    assert batch.labels[0, 4] == IGNORE and batch.labels[0, 7] == IGNORE  # each row's last position
    assert (batch.labels[1, 4:] == IGNORE).all() and batch.input_ids[1, 4:].eq(PAD).all()
    assert int(batch.step_loss_tokens) == int((padded.labels != IGNORE).sum())


TINY = {"vocab_size": 259, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "tie_word_embeddings": False, "bos_token_id": None, "eos_token_id": 258, "pad_token_id": PAD}


def loss_and_grads(compose_cfg, loss: str, model_type: str, batch):
    cfg = compose_cfg([f"loss={loss}", "model=tiny"])
    objective, teacher = build_objective(cfg)
    torch.manual_seed(0)
    model = build_causal_lm({"model_type": model_type, **TINY})
    module = SFTModule(model, objective, build_optimizer(cfg), teacher=teacher)
    module.configure_model()
    if teacher is not None and getattr(teacher, "model", None) is not None:
        with torch.no_grad():  # a teacher apart from the student, so its logits matter
            for p in teacher.model.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    out = module.compute_loss(batch)
    out.loss_sum.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss_sum.detach(), grads


@pytest.mark.parametrize(("loss", "model_type"), [(loss, "llama") for loss in group_options("loss")]
                         + [("curio", "qwen2")])
def test_packed_equals_padded_in_value_and_gradient(compose_cfg, loss, model_type):
    items = rows([17, 5, 30, 9, 1 + 2, 24], seed=3)
    padded = Collator(PAD)(items)
    packed = PackCollator(PAD)([items[:3], items[3:]])  # two packs of different lengths: one padded
    want, want_grads = loss_and_grads(compose_cfg, loss, model_type, padded)
    got, got_grads = loss_and_grads(compose_cfg, loss, model_type, packed)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got_grads.keys() == want_grads.keys() and want_grads
    scale = max(g.abs().max() for g in want_grads.values())
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=0, atol=1e-5 * float(scale), msg=lambda m, n=name: f"{n}: {m}")


def test_a_packed_run_trains_with_a_global_step_normaliser(tmp_path, compose_cfg, fast):
    cfg = compose_cfg(fast + ["data.packing=true", "data.pack_tokens=256", "data.micro_batch_size=1",
                              "trainer.accumulate_grad_batches=2", "trainer.val_check_interval=4"], tmp_path)
    train(cfg)
    losses = column(read_metrics(tmp_path), "train/loss")
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    assert len(column(read_metrics(tmp_path), "val/loss")) == 2  # validation stays padded


def test_packing_settings_are_checked(tmp_path, compose_cfg, fast):
    from curio.cli import build

    for overrides, message in ((["data.packing=true"], "data.packing=true needs data.pack_tokens"),
                               (["data.packing=true", "data.pack_tokens=0"], "data.pack_tokens=0: must be an integer >= 1"),
                               (["data.pack_tokens=64"], "data.pack_tokens=64 applies only with data.packing=true")):
        cfg = compose_cfg(fast + overrides, tmp_path)
        with pytest.raises(ConfigError, match=message):
            build(cfg.data, "data", tokenizer=None)
