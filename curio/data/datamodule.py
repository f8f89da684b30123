"""The LightningDataModule: read, parse, encode, split, and batch SFT data."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from curio.data.collate import Collator
from curio.data.encoding import ConversationEncoder, Encoded
from curio.data.formats import FORMATS, detect_format, to_conversation
from curio.data.packing import PackCollator, pack_rows
from curio.data.sampling import StepLayout, StepWindowSampler
from curio.data.sources import read_rows
from curio.errors import ConfigError, DataError, check_count

log = logging.getLogger(__name__)

BAD_ROW_POLICIES = ("error", "skip")


class EncodedDataset(Dataset):
    """Encoded samples, indexed by the plain index or by the sampler's ``(index, step_tokens)``."""

    def __init__(self, samples: list[Encoded]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, step_tokens = key if isinstance(key, tuple) else (key, None)
        sample = self.samples[index]
        item = {"input_ids": sample.input_ids, "loss_mask": sample.loss_mask}
        if step_tokens is not None:
            item["step_loss_tokens"] = step_tokens
        return item


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning stores ``state_dict()`` of a stateful train loader in the checkpoint and calls
    ``load_state_dict`` on resume before it starts iterating; the sampler then skips the
    micro-batches that were already trained on, so a run resumed mid-epoch sees exactly the data
    order of an uninterrupted one. ``progress`` returns how many micro-batches of the current epoch
    the trainer has processed (the DataLoader itself cannot tell: batches are prefetched).
    """

    def __init__(self, *args, progress: Callable[[], int], **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "micro_batches_done": self.progress()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.set_epoch(state["epoch"])
        self.batch_sampler.skip = state["micro_batches_done"]


class PackedDataset(Dataset):
    """Packs of encoded samples: the sampler's ``(pack_index, step_tokens)`` -> the pack's row items."""

    def __init__(self, rows: EncodedDataset, packs: list[list[int]]):
        self.rows = rows
        self.packs = packs

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, key: tuple[int, int]) -> list[dict[str, Any]]:
        index, step_tokens = key
        return [self.rows[(i, step_tokens)] for i in self.packs[index]]


class SFTDataModule(L.LightningDataModule):
    """Supervised fine-tuning data.

    Args:
        tokenizer: the model's tokenizer (with a chat template).
        train: a ``.jsonl``/``.json``/``.parquet`` file, a folder of them, or a hub dataset name.
        val: same, or None to hold out ``val_size`` rows of ``train``.
        val_size: held-out rows when ``val`` is None: an int count or a fraction in (0, 1); 0 = none.
        format: ``auto``, ``prompt_response``, ``messages`` or ``authors`` (see ``curio.data.formats``).
        system_prompt: system message added to rows that have none (``prompt_response``, ``messages``).
        think_prefix: for ``authors`` rows, stripped from the target when the generation prompt
            already ends with it (spec section 2); None disables.
        train_split, val_split: split names for hub datasets.
        max_prompt_tokens, max_response_tokens, prompt_overflow, response_overflow: length rules
            (see ``ConversationEncoder``).
        on_bad_row: ``error`` stops at the first malformed row; ``skip`` drops and counts it.
        micro_batch_size: sequences per micro-batch per device. Accumulation and the number of
            devices are the trainer's (``trainer.accumulate_grad_batches``, devices x nodes): set
            ``datamodule.trainer`` before :meth:`setup`, as ``Trainer.fit`` does.
        val_batch_size: sequences per validation batch (default: ``micro_batch_size``).
        group_by_length, bucket_windows, seed: batching (see ``StepWindowSampler``).
        num_workers: DataLoader worker processes.
        packing: train on packed rows (``curio.data.packing``): ``micro_batch_size`` packs of at
            most ``pack_tokens`` tokens per micro-batch, each row attending to itself only, no
            padding between rows. Validation batches stay padded.
        pack_tokens: the token budget of one pack (needed with ``packing``).
    """

    def __init__(
        self,
        tokenizer,
        train: str,
        val: str | None = None,
        val_size: float = 0.05,
        format: str = "auto",
        system_prompt: str | None = None,
        think_prefix: str | None = "<think>\n",
        train_split: str = "train",
        val_split: str = "validation",
        max_prompt_tokens: int = 1024,
        max_response_tokens: int = 8192,
        prompt_overflow: str = "drop",
        response_overflow: str = "truncate",
        on_bad_row: str = "error",
        micro_batch_size: int = 2,
        val_batch_size: int | None = None,
        group_by_length: bool = True,
        bucket_windows: int = 50,
        seed: int = 0,
        num_workers: int = 0,
        packing: bool = False,
        pack_tokens: int | None = None,
    ):
        super().__init__()
        if packing and pack_tokens is None:
            raise ConfigError("data.packing=true needs data.pack_tokens, the token budget of one pack (e.g. 4096)")
        if packing:
            check_count("data.pack_tokens", pack_tokens)
        elif pack_tokens is not None:
            raise ConfigError(f"data.pack_tokens={pack_tokens} applies only with data.packing=true")
        if format not in FORMATS:
            raise ConfigError(f"data.format={format!r}: choose one of {list(FORMATS)}")
        if on_bad_row not in BAD_ROW_POLICIES:
            raise ConfigError(f"data.on_bad_row={on_bad_row!r}: choose one of {list(BAD_ROW_POLICIES)}")
        if val_size < 0 or (isinstance(val_size, float) and not float(val_size).is_integer() and val_size >= 1):
            raise ConfigError(f"data.val_size={val_size}: use a count >= 0 or a fraction in (0, 1)")
        self.tokenizer = tokenizer
        self.train_source, self.val_source = train, val
        self.val_size = val_size
        self.format = format
        self.system_prompt = system_prompt
        self.think_prefix = think_prefix
        self.train_split, self.val_split = train_split, val_split
        self.encoder = ConversationEncoder(
            tokenizer, max_prompt_tokens, max_response_tokens, prompt_overflow, response_overflow
        )
        self.on_bad_row = on_bad_row
        self.micro_batch_size = micro_batch_size
        self.val_batch_size = val_batch_size or micro_batch_size
        self.group_by_length = group_by_length
        self.bucket_windows = bucket_windows
        self.seed = seed
        self.num_workers = num_workers
        self.collator = Collator(pad_token_id=tokenizer.pad_token_id)
        self.pack_tokens = pack_tokens if packing else None
        self.packs: list[list[int]] | None = None  # row indices of each pack, with packing
        self.train_set: EncodedDataset | None = None
        self.val_set: EncodedDataset | None = None
        self.report: dict[str, dict[str, int]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        trainer = self.trainer
        self.layout = StepLayout(self.micro_batch_size, trainer.accumulate_grad_batches if trainer else 1,
                                 trainer.world_size if trainer else 1)
        train = self._encode(self.train_source, self.train_split, "data.train")
        if self.val_source is not None:
            val = self._encode(self.val_source, self.val_split, "data.val")
        else:
            train, val = self._hold_out(train)
        if self.pack_tokens is not None:
            self.packs = pack_rows([len(s.input_ids) for s in train], self.pack_tokens)
            tokens = sum(len(s.input_ids) for s in train)
            log.info("data train: %d rows in %d packs of at most %d tokens (%.1f%% full)", len(train),
                     len(self.packs), self.pack_tokens, 100 * tokens / (len(self.packs) * self.pack_tokens))
        self.layout.check_fits(len(self.packs) if self.packs is not None else len(train),
                               "packs" if self.packs is not None else "sequences")
        self.train_set, self.val_set = EncodedDataset(train), EncodedDataset(val)
        self.report["train"]["kept"] = len(train)
        self.report.setdefault("val", {})["kept"] = len(val)
        for split, counts in self.report.items():
            log.info("data %s: %s", split, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))

    def _encode(self, source: str, split: str, key: str) -> list[Encoded]:
        records = read_rows(source, split, key)
        counts: Counter[str] = Counter(rows=len(records))
        fmt = self.format
        if fmt == "auto":
            # One format per file, read off the first usable row, so a later row that lacks a
            # field is reported as exactly that rather than as "unknown format".
            first = next((r for r in records if r.problem is None), None)
            if first is None:
                raise DataError(f"{source}: no row is a JSON object ({records[0].where}: {records[0].problem})")
            try:
                fmt = detect_format(first.value)
            except ValueError as err:
                raise DataError(f"{first.where}: {err} (or set data.format)") from err
        samples: list[Encoded] = []
        for record in records:
            try:
                if record.problem is not None:
                    raise DataError(record.problem)
                conversation = to_conversation(record.value, fmt, self.system_prompt, self.think_prefix)
                encoded, dropped = self.encoder.encode(conversation)
            except DataError as err:
                if self.on_bad_row == "error":
                    raise DataError(f"{record.where}: {err} (set data.on_bad_row=skip to skip such rows)") from err
                counts[f"skipped_{record.reason or 'bad_row'}"] += 1
                continue
            if encoded is None:
                counts[f"dropped_{dropped}"] += 1
                continue
            counts["truncated"] += encoded.truncated
            samples.append(encoded)
        if not samples:
            raise DataError(f"{source}: no usable rows ({dict(counts)})")
        self.report[key.removeprefix("data.")] = dict(counts)
        return samples

    def _hold_out(self, samples: list[Encoded]) -> tuple[list[Encoded], list[Encoded]]:
        n = len(samples)
        count = int(self.val_size) if self.val_size >= 1 else round(self.val_size * n)
        if count >= n:
            raise ConfigError(f"data.val_size={self.val_size} holds out all {n} training rows")
        # A fixed permutation (independent of the training seed) so the val set never changes.
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1234)).tolist()
        held = set(perm[:count])
        return [s for i, s in enumerate(samples) if i not in held], [samples[i] for i in sorted(held)]

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (after :meth:`setup`)."""
        assert self.train_set is not None, "call setup() first"
        return self.layout.steps(len(self.packs) if self.packs is not None else len(self.train_set))

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        trainer = self.trainer
        rows = self.train_set.samples
        # With packing the sampler's "sequences" are packs: their lengths and loss tokens are sums.
        units = self.packs if self.packs is not None else [[i] for i in range(len(rows))]
        sampler = StepWindowSampler(
            lengths=[sum(len(rows[i].input_ids) for i in unit) for unit in units],
            loss_tokens=[sum(rows[i].num_loss_tokens for i in unit) for unit in units],
            layout=self.layout,
            rank=trainer.global_rank if trainer else 0,
            seed=self.seed,
            group_by_length=self.group_by_length,
            bucket_windows=self.bucket_windows,
        )
        packed = self.packs is not None
        return ResumableDataLoader(
            PackedDataset(self.train_set, self.packs) if packed else self.train_set,
            batch_sampler=sampler,
            collate_fn=PackCollator(self.tokenizer.pad_token_id) if packed else self.collator,
            num_workers=self.num_workers,
            generator=self._loader_generator(),
            progress=self._micro_batches_done,
        )

    def _loader_generator(self) -> torch.Generator:
        # Creating a DataLoader iterator draws its workers' base seed from this generator, or from
        # torch's global RNG when there is none. A resumed run creates its iterators at other
        # moments than the run it resumes, so that draw must not move the global RNG that dropout
        # (e.g. LoRA's) reads, or the resumed run would drop other units.
        return torch.Generator().manual_seed(self.seed)

    def _micro_batches_done(self) -> int:
        # Checkpoints are written after a batch is processed (on_train_batch_end or after
        # validation), so "processed" is what a resumed run must skip.
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        if len(self.val_set) == 0:
            return []  # type: ignore[return-value]
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        # Each rank evaluates a strided shard; the module sums token losses across ranks.
        indices = list(range(rank, len(self.val_set), world))
        batches = [indices[i : i + self.val_batch_size] for i in range(0, len(indices), self.val_batch_size)]
        return DataLoader(self.val_set, batch_sampler=batches, collate_fn=self.collator, num_workers=self.num_workers,
                          generator=self._loader_generator())
