"""Step-window sampling, padding and label shifting."""

import math

import pytest
import torch

from curio.data.collate import IGNORE, Collator
from curio.data.sampling import StepLayout, StepWindowSampler
from curio.errors import ConfigError
from curio.schedule import warmup_cosine_factor

LENGTHS = [(i * 37) % 101 + 5 for i in range(103)]
LOSS_TOKENS = [n // 2 for n in LENGTHS]


def sampler(micro_batch_size=3, accumulate=2, world_size=1, **kw):
    layout = StepLayout(micro_batch_size, accumulate, world_size)
    return StepWindowSampler(**{"lengths": LENGTHS, "loss_tokens": LOSS_TOKENS, "layout": layout, "seed": 7, **kw})


def test_deterministic_per_seed_and_epoch():
    assert list(sampler()) == list(sampler())
    assert list(sampler()) != list(sampler(seed=8))
    s = sampler()
    s.set_epoch(1)
    assert list(s) != list(sampler())


def test_windows_cover_data_once_and_drop_incomplete_tail():
    s = sampler()
    batches = list(s)
    assert len(batches) == len(s) == (103 // 6) * 2
    indices = [i for b in batches for i, _ in b]
    assert len(indices) == len(set(indices)) == (103 // 6) * 6


def test_step_tokens_are_the_whole_windows_loss_tokens_on_every_rank():
    per_rank = [list(sampler(world_size=2, rank=r)) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])
    for step in range(len(per_rank[0]) // 2):
        window = [mb for r in range(2) for mb in per_rank[r][2 * step: 2 * step + 2]]
        indices = [i for mb in window for i, _ in mb]
        assert len(set(indices)) == 12  # ranks never share a sample
        totals = {t for mb in window for _, t in mb}
        assert totals == {sum(LOSS_TOKENS[i] for i in indices)}


def test_length_grouping_cuts_padding():
    def padding(batches):
        return sum(len(b) * max(LENGTHS[i] for i, _ in b) - sum(LENGTHS[i] for i, _ in b) for b in batches)

    assert padding(list(sampler())) < 0.5 * padding(list(sampler(group_by_length=False)))


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs 120 sequences.*only 103"):
        sampler(micro_batch_size=20, accumulate=3, world_size=2)


def test_step_layout_is_the_one_place_the_step_window_is_counted():
    layout = StepLayout(micro_batch_size=3, accumulate=4, world_size=2)
    assert layout.sequences == 24 and layout.steps(100) == 4 and layout.steps(23) == 0
    with pytest.raises(ConfigError, match=r"data.micro_batch_size=0: must be an integer >= 1"):
        StepLayout(micro_batch_size=0)


def test_collate_pads_right_and_shifts_labels():
    batch = Collator(pad_token_id=0)([
        {"input_ids": [5, 6, 7, 8], "loss_mask": [False, False, True, True], "step_loss_tokens": 3},
        {"input_ids": [9, 10], "loss_mask": [False, True], "step_loss_tokens": 3},
    ])
    assert batch.input_ids.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.labels.tolist() == [[IGNORE, 7, 8, IGNORE], [10, IGNORE, IGNORE, IGNORE]]
    assert int(batch.step_loss_tokens) == 3 and int((batch.labels != IGNORE).sum()) == 3


def test_schedule_matches_spec_section_8():
    kw = dict(total_steps=534, warmup_steps=60, warmup_start_factor=1e-4, min_lr_ratio=1e-4, horizon_multiplier=4.0)
    assert warmup_cosine_factor(0, **kw) == pytest.approx(1e-4)
    assert warmup_cosine_factor(30, **kw) == pytest.approx(1e-4 + (1 - 1e-4) * 0.5)
    assert warmup_cosine_factor(60, **kw) == pytest.approx(1.0)
    # The authors' 4x horizon leaves the lr near 0.88x peak at the end of training.
    end = 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 474 / (4 * 534 - 60)))
    assert warmup_cosine_factor(534, **kw) == pytest.approx(end) and 0.87 < end < 0.89
    # A true cosine (multiplier 1) ends at the floor.
    assert warmup_cosine_factor(534, **{**kw, "horizon_multiplier": 1.0}) == pytest.approx(1e-4)
    values = [warmup_cosine_factor(s, **kw) for s in range(60, 535)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_collated_batch_moves_to_device():
    batch = Collator(pad_token_id=0)([{"input_ids": [1, 2], "loss_mask": [False, True]}])
    assert batch.to(torch.device("cpu")).input_ids.device.type == "cpu"
    assert int(batch.step_loss_tokens) == 1  # validation batches count their own tokens
