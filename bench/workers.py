"""One measurement per process: ``python -m bench.workers <kind> --preset-json ... --out result.json``.

Each measurement runs in a fresh process so that its peak memory (the process's peak RSS on the
CPU, ``torch.cuda.max_memory_allocated`` on a GPU) is its own. ``bench/run.py`` starts them.

Kinds:
    step     one loss configuration trained with curio's own Trainer path (``curio.train.train``)
    trl      the same model, data, batch and precision trained with TRL's ``SFTTrainer``
    chunked  one forward + backward of the CurioSFT loss, chunked (curio) or naive (full logits)
    matmul   the device's measured matmul rate (the MFU denominator)
    data     ``loss=ce`` on one data set, padded (length-bucketed) or packed (``bench/packing.py``)
    teacher_parts  each part of the lagged entropy-guided teacher's work, timed alone
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from curio.cpu_allocator import keep_freed_memory
from curio.dtypes import parse_dtype

ROOT = Path(__file__).resolve().parents[1]

#: Loss variants: name -> curio config overrides.
LOSSES: dict[str, list[str]] = {
    "ce": ["loss=ce"],
    "entropy": ["loss=entropy"],
    "dft": ["loss=dft"],
    "curio_live": ["loss=curio", "teacher=live"],
    "curio_lagged_fixed": ["loss=curio", "teacher=lagged", "temp=fixed"],
    "curio_lagged_entropy_guided": ["loss=curio", "teacher=lagged", "temp=entropy_guided"],
    # The authors' bf16 teacher statistics (logits projected in the compute dtype): the cost of
    # the default float32 projection is the difference to the row above under bf16 precision.
    "curio_lagged_entropy_guided_bf16_stats": ["loss=curio", "teacher=lagged", "temp=entropy_guided",
                                               "teacher.fp32_logits=false"],
    # The lagged teacher's copy in bfloat16 (its forward in bf16, the statistics from float32 logits
    # projected on upcast weights), the student in float32: a cheaper teacher forward.
    "curio_lagged_entropy_guided_bf16_teacher": ["loss=curio", "teacher=lagged", "temp=entropy_guided",
                                                 "teacher.dtype=bfloat16"],
    # The field's baselines (docs/method.md), each with the teacher its file chooses.
    "gem": ["loss=gem"],
    "psft": ["loss=psft"],
    "asft": ["loss=asft"],
    "sft_kl": ["loss=sft_kl"],
    "eaft": ["loss=eaft"],
    "sed": ["loss=sed"],
    # LoRA (curio/lora.py): rank-16 adapters on every linear layer; the lagged teacher is then a
    # second adapter on the student's base instead of a full copy.
    "ce_lora16": ["loss=ce", "model.lora.rank=16"],
    "curio_lagged_entropy_guided_lora16": ["loss=curio", "teacher=lagged", "temp=entropy_guided",
                                           "model.lora.rank=16"],
}


# ------------------------------------------------------------------------------------ memory
def rss_now() -> int:
    """Resident set size of this process now, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Memory:
    """Peak memory of a region: peak RSS on the CPU, peak allocated tensor memory on CUDA."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.baseline = 0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
        else:
            self.baseline = rss_now()

    def result(self) -> dict[str, int]:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            return {"peak_bytes": peak, "baseline_bytes": self.baseline, "kind": "cuda_max_allocated"}
        return {"peak_bytes": rss_peak(), "baseline_bytes": self.baseline, "kind": "cpu_peak_rss"}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------- the data
def write_data(path: Path, preset: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows whose encoded length is exactly ``seq_len`` (prompt ``prompt_len``, rest response).

    Random lowercase text through curio's byte-level tokenizer and chat template; returns the
    encoded samples (``input_ids``, ``loss_mask``) so TRL trains on the very same tokens.
    """
    from curio.data.datamodule import SFTDataModule
    from curio.models import byte_level_tokenizer

    tokenizer = byte_level_tokenizer("chatml")
    rng = random.Random(0)
    n_rows = (preset["warmup_steps"] + preset["steps"]) * preset["micro_batch_size"]
    text = lambda n: "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(n))  # noqa: E731

    def encode(rows: list[dict[str, str]]) -> list[Any]:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        dm = SFTDataModule(tokenizer, train=str(path), val_size=0, max_prompt_tokens=10**6,
                           max_response_tokens=10**6, micro_batch_size=1)  # encoding only
        dm.setup("fit")
        return dm.train_set.samples

    probe = encode([{"prompt": "a" * preset["prompt_len"], "response": "b"}])[0]
    overhead = len(probe.input_ids) - preset["prompt_len"] - 1
    response_len = preset["seq_len"] - preset["prompt_len"] - overhead
    rows = [{"prompt": text(preset["prompt_len"]), "response": text(response_len)} for _ in range(n_rows)]
    samples = encode(rows)
    assert all(len(s.input_ids) == preset["seq_len"] for s in samples), "synthetic rows must have seq_len tokens"
    return [{"input_ids": list(s.input_ids), "loss_mask": [int(m) for m in s.loss_mask]} for s in samples]


def model_config(preset: dict[str, Any]) -> dict[str, Any]:
    # The byte-level tokenizer's special ids (eos 258, pad 256) exist in any vocabulary > 259.
    return {**preset["model"], "bos_token_id": None, "eos_token_id": 258, "pad_token_id": 256}


# ----------------------------------------------------------------------------- step (curio)
class StepTimer(L.Callback):
    """Lightning callback: wall time of every optimizer step, tokens, and peak memory.

    A step's time runs from the end of the previous step to the end of this one (data, forward,
    backward, optimizer, teacher sync, logging: everything ``train.py`` does per step).
    """

    def __init__(self, out: str, device: str):
        self.out, self.device = out, device
        self.memory = Memory(device)
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.tokens: list[int] = []
        self.padded_tokens: list[int] = []  # the batch's positions, padding included
        self.loss_tokens: list[int] = []
        self._last = self._last_cpu = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.memory.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            sync(self.device)
            self._last, self._last_cpu = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        now, cpu = time.perf_counter(), time.process_time()
        self.times.append(now - self._last)
        self.cpu_times.append(cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu
        self.tokens.append(int(batch.attention_mask.sum()))
        self.padded_tokens.append(batch.input_ids.numel())
        self.loss_tokens.append(int((batch.labels != -100).sum()))

    def on_train_end(self, trainer, pl_module) -> None:
        result = {"times": self.times, "cpu_times": self.cpu_times, "tokens": self.tokens,
                  "padded_tokens": self.padded_tokens, "loss_tokens": self.loss_tokens, **self.memory.result()}
        Path(self.out).write_text(json.dumps(result))


def compose_config(name: str, overrides: list[str]) -> Any:
    """``conf/<name>.yaml`` with ``overrides``, as its command would see it (Hydra's runtime
    config set, its own node removed), for a run started in this process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from curio.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_step(preset: dict[str, Any], loss: str, out: str) -> None:
    with tempfile.TemporaryDirectory(prefix="curio-bench-") as folder:
        _run_step(preset, loss, out, Path(folder))


def _run_step(preset: dict[str, Any], loss: str, out: str, tmp: Path) -> None:
    from omegaconf import open_dict

    from curio.train import train

    write_data(tmp / "data.jsonl", preset)
    overrides = [
        *LOSSES[loss],
        "model=tiny", "data=jsonl", f"data.train={tmp / 'data.jsonl'}", "data.val_size=0",
        f"data.micro_batch_size={preset['micro_batch_size']}", "data.max_prompt_tokens=1000000",
        "data.max_response_tokens=1000000", "logger=none", "callbacks=none",
        "trainer=gpu" if preset["device"].startswith("cuda") else "trainer=cpu",
        f"trainer.precision={preset['precision']}",
        f"trainer.max_steps={preset['warmup_steps'] + preset['steps']}",
        "trainer.enable_model_summary=false", "trainer.accumulate_grad_batches=1",
        f"module.gradient_checkpointing={str(preset['gradient_checkpointing']).lower()}",
        "optim.lr=1e-5", "sched.warmup_steps=0",
        f"cpu_keep_freed_memory={str(preset['cpu_keep_freed_memory']).lower()}",
    ]
    cfg = compose_config("train", overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run")
        cfg.model.net.config = model_config(preset)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_checkpointing = False  # Lightning's default checkpoint at the end: GBs, unread
        cfg.callbacks = {"timer": {"_target_": "bench.workers.StepTimer", "out": out, "device": preset["device"]}}
    train(cfg)


# ------------------------------------------------------------------------------ packing
def write_ragged_data(path: Path, spec: dict[str, Any]) -> None:
    """``spec["rows"]`` prompt/response rows of random text whose lengths are ragged and long-tailed:
    prompts uniform in ``spec["prompt_chars"]``, responses log-normal (``median``, ``sigma``) clipped
    to ``[min, max]`` characters (one byte-level token each)."""
    rng = random.Random(0)
    r = spec["response_chars"]
    text = lambda n: "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(n))  # noqa: E731
    lines = []
    for _ in range(spec["rows"]):
        n = int(min(r["max"], max(r["min"], rng.lognormvariate(math.log(r["median"]), r["sigma"]))))
        lines.append(json.dumps({"prompt": text(rng.randint(*spec["prompt_chars"])), "response": text(n)}))
    path.write_text("\n".join(lines) + "\n")


#: Batching variants of ``python -m bench.packing``: name -> data overrides (the budget is the data set's).
BATCHING = {
    "padded": [],  # length-bucketed (data.group_by_length, the default)
    "padded, not bucketed": ["data.group_by_length=false"],
    "packed": ["data.packing=true", "data.micro_batch_size=1"],  # one pack per micro-batch: no padding at all
}


def run_data_step(preset: dict[str, Any], dataset: str, batching: str, out: str) -> None:
    """``loss=ce`` on one of the preset's ``datasets`` with one of the :data:`BATCHING` variants."""
    with tempfile.TemporaryDirectory(prefix="curio-bench-data-") as folder:
        _run_data_step(preset, dataset, batching, out, Path(folder))


def _run_data_step(preset: dict[str, Any], dataset: str, batching: str, out: str, tmp: Path) -> None:
    from omegaconf import open_dict

    from curio.train import train

    spec = preset["datasets"][dataset]
    overrides = list(spec.get("overrides", []))
    if "rows" in spec:  # synthetic ragged traces on a model built from the preset's config
        write_ragged_data(tmp / "data.jsonl", spec)
        overrides += ["model=tiny", "data=jsonl", f"data.train={tmp / 'data.jsonl'}", "data.max_prompt_tokens=1000000",
                      "data.max_response_tokens=1000000"]
    overrides += [
        "loss=ce", "data.val_size=0", f"data.micro_batch_size={spec['micro_batch_size']}", "logger=none",
        "callbacks=none", "trainer=gpu" if preset["device"].startswith("cuda") else "trainer=cpu",
        f"trainer.precision={preset['precision']}",
        f"trainer.max_steps={preset['warmup_steps'] + preset['steps']}", "trainer.enable_model_summary=false",
        "trainer.accumulate_grad_batches=1", "optim.lr=1e-5", "sched.warmup_steps=0",
        f"cpu_keep_freed_memory={str(preset['cpu_keep_freed_memory']).lower()}",
    ]
    overrides += BATCHING[batching]
    if batching == "packed":
        overrides.append(f"data.pack_tokens={spec['pack_tokens']}")
    cfg = compose_config("train", overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run")
        if "model" in spec:
            cfg.model.net.config = model_config(spec)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_checkpointing = False
        cfg.callbacks = {"timer": {"_target_": "bench.workers.StepTimer", "out": out, "device": preset["device"]}}
    train(cfg)


# ------------------------------------------------------------------------ teacher parts
def run_teacher_parts(preset: dict[str, Any], out: str, reps: int = 5) -> None:
    """Each part of the extra work of ``loss=curio teacher=lagged temp=entropy_guided`` over
    ``loss=ce``, timed alone on the preset's model and tokens (median of ``reps``), in the order
    the step runs them: the teacher's decoder pass; per loss chunk (1,024 tokens, the loss's
    default), the float32 output projection, the full-vocabulary entropy, the top-K selection, the
    rest of the tau rule (bisection, targets, gate), log q; and the sync, once every 5 steps
    (reported per step). Everything runs under ``no_grad``, as the teacher does in the step."""
    import copy

    from curio.models import build_causal_lm
    from curio.ops import entropy, project, target_logprob_at, top_k_values
    from curio.teacher.sync import lerp_, paired_tensors
    from curio.temperature import EntropyGuidedTemperature

    device = torch.device(preset["device"])
    student = build_causal_lm(model_config(preset), dtype="float32").to(device)
    teacher = copy.deepcopy(student).requires_grad_(False).eval()
    rule, chunk, sync_every = EntropyGuidedTemperature(), 1024, 5
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (preset["micro_batch_size"], preset["seq_len"]), generator=g).to(device)
    head = teacher.get_output_embeddings()

    def timed(fn) -> tuple[float, Any]:
        sync(preset["device"])
        start = time.perf_counter()
        value = fn()
        sync(preset["device"])
        return time.perf_counter() - start, value

    parts: dict[str, list[float]] = {}
    with torch.no_grad():
        for _ in range(reps):
            times: dict[str, float] = {}
            times["teacher decoder pass"], hidden = timed(
                lambda: teacher.base_model(input_ids=ids, use_cache=False).last_hidden_state)
            h = hidden[:, preset["prompt_len"]:].reshape(-1, hidden.shape[-1])
            targets = torch.randint(0, model_config(preset)["vocab_size"], (h.shape[0],), generator=g).to(device)
            for start in range(0, h.shape[0], chunk):
                rows = slice(start, start + chunk)
                t, z = timed(lambda: project(head, h[rows], float32=True))
                times["output projection"] = times.get("output projection", 0.0) + t
                t, ent = timed(lambda: entropy(z))
                times["full-vocabulary entropy"] = times.get("full-vocabulary entropy", 0.0) + t
                searched = z[ent > rule.gate_entropy]  # the tokens the rule takes a top K of
                t, _ = timed(lambda: top_k_values(searched, rule.top_k))
                times["top-K selection"] = times.get("top-K selection", 0.0) + t
                t, temp = timed(lambda: rule(z, ent))  # includes its own top-K: subtracted below
                times["tau rule (bisection, gate)"] = times.get("tau rule (bisection, gate)", 0.0) + t
                t, _ = timed(lambda: target_logprob_at(z, targets[rows], temp.tau))
                times["log q"] = times.get("log q", 0.0) + t
            times["tau rule (bisection, gate)"] -= times["top-K selection"]
            t, _ = timed(lambda: lerp_(*paired_tensors(teacher, student), 0.99))
            times[f"sync (1 step in {sync_every})"] = t / sync_every
            for name, value in times.items():
                parts.setdefault(name, []).append(value)
    Path(out).write_text(json.dumps({"parts": parts, "loss_tokens": int(h.shape[0])}))


# ---------------------------------------------------------------------------------- trl
def run_trl(preset: dict[str, Any], out: str) -> None:
    """Vanilla SFT with TRL's ``SFTTrainer``: same model, tokens, batch, precision and checkpointing."""
    with tempfile.TemporaryDirectory(prefix="curio-bench-trl-") as folder:
        _run_trl(preset, out, Path(folder))


def _run_trl(preset: dict[str, Any], out: str, tmp: Path) -> None:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from curio.models import build_causal_lm, byte_level_tokenizer

    samples = write_data(tmp / "data.jsonl", preset)
    dataset = Dataset.from_list([{"input_ids": s["input_ids"], "completion_mask": s["loss_mask"]} for s in samples])
    torch.manual_seed(0)
    model = build_causal_lm(model_config(preset), dtype="float32")
    device = preset["device"]
    memory = Memory(device)
    record: dict[str, list] = {"times": [], "cpu_times": [], "tokens": []}

    class Timer(TrainerCallback):
        last = last_cpu = 0.0

        def on_train_begin(self, args, state, control, **kw):
            memory.start()

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 0:
                sync(device)
                Timer.last, Timer.last_cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            sync(device)
            now, cpu = time.perf_counter(), time.process_time()
            record["times"].append(now - Timer.last)
            record["cpu_times"].append(cpu - Timer.last_cpu)
            record["tokens"].append(preset["micro_batch_size"] * preset["seq_len"])
            Timer.last, Timer.last_cpu = now, cpu

    args = SFTConfig(
        output_dir=str(tmp / "run"),
        max_steps=preset["warmup_steps"] + preset["steps"],
        per_device_train_batch_size=preset["micro_batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=preset["precision"].startswith("bf16"),
        use_cpu=not device.startswith("cuda"),
        gradient_checkpointing=preset["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        max_length=None,
        packing=False,
        completion_only_loss=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                         processing_class=byte_level_tokenizer("chatml"), callbacks=[Timer()])
    trainer.train()
    Path(out).write_text(json.dumps({**record, **memory.result()}))


# ------------------------------------------------------------------------------ chunked loss
def run_chunked(chunked: dict[str, Any], device: str, impl: str, tokens: int, out: str) -> None:
    """Forward + backward of the CurioSFT loss (entropy-guided temperature) on ``tokens`` positions."""
    from curio.losses import CurioLoss
    from curio.losses.base import LossInputs
    from curio.teacher.base import ProjectedLogits
    from curio.temperature import EntropyGuidedTemperature

    from bench.naive import naive_curio_loss

    dtype = parse_dtype(chunked["dtype"], "chunked.dtype")
    vocab, hidden_size = chunked["vocab"], chunked["hidden"]
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(hidden_size, vocab, bias=False)
    teacher_head = torch.nn.Linear(hidden_size, vocab, bias=False).requires_grad_(False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocab, hidden_size, generator=g) * hidden_size**-0.5 * 2)
        teacher_head.weight.copy_(head.weight + 0.1 * torch.randn(vocab, hidden_size, generator=g) * hidden_size**-0.5)
    head, teacher_head = head.to(device, dtype), teacher_head.to(device, dtype)
    x = torch.randn(tokens, hidden_size, generator=g).to(device, dtype)
    teacher_x = (x.float() + 0.1 * torch.randn(tokens, hidden_size, generator=g).to(device)).to(dtype)
    targets = torch.randint(0, vocab, (tokens,), generator=g).to(device)
    temperature = EntropyGuidedTemperature()
    loss_fn = CurioLoss(temperature=temperature, chunk_size=chunked["chunk_size"])

    def once() -> float:
        hidden = x.clone().requires_grad_(True)
        head.weight.grad = None
        if impl == "chunked":
            teacher = ProjectedLogits(teacher_x, teacher_head, fp32=False)
            loss = loss_fn(LossInputs(hidden=hidden, targets=targets, head=head, teacher=teacher)).loss_sum / tokens
        else:
            loss, _ = naive_curio_loss(hidden, head, teacher_x, teacher_head, targets, temperature,
                                       normalizer=float(tokens))
        loss.backward()
        return float(loss)

    memory = Memory(device)
    memory.start()
    times, cpu_times, losses = [], [], []
    for _ in range(chunked["reps"]):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(once())
        sync(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    grad_norm = float(head.weight.grad.float().norm())
    Path(out).write_text(json.dumps({"times": times, "cpu_times": cpu_times, "loss": losses[-1], "grad_norm": grad_norm, **memory.result()}))


# ------------------------------------------------------------------------------------ matmul
def run_matmul(matmul: dict[str, Any], device: str, out: str) -> None:
    """FLOP/s of an n x n x n matmul in ``dtype``: the fastest of 10 after 3 warm-ups."""
    n, dtype = matmul["n"], parse_dtype(matmul["dtype"], "matmul.dtype")
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(13):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    # The fastest repetition: the closest to the device's real peak on a machine shared with others.
    Path(out).write_text(json.dumps({"flops_per_s": 2 * n**3 / min(times), "n": n, "dtype": matmul["dtype"], "times": times}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["step", "trl", "chunked", "matmul", "data", "teacher_parts"])
    parser.add_argument("--preset-json", required=True, help="the preset, as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--loss", choices=sorted(LOSSES))
    parser.add_argument("--impl", choices=["chunked", "naive"])
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--dataset", help="kind=data: a key of the preset's datasets")
    parser.add_argument("--batching", choices=sorted(BATCHING), help="kind=data: how rows become batches")
    args = parser.parse_args(argv)
    preset = json.loads(args.preset_json)
    if preset.get("threads"):
        # One thread: the process's CPU time is then the compute itself, whatever else runs on
        # the machine (several threads spin-wait for each other when the machine is shared).
        torch.set_num_threads(preset["threads"])
    if preset["device"] == "cpu" and preset["cpu_keep_freed_memory"] and args.kind in ("trl", "teacher_parts"):
        # TRL trains, and the teacher's parts are timed, under the same allocator behaviour as
        # curio's step, whose train() sets it from the config key passed in run_step. Not the chunked/naive loss runs: their peak resident set
        # must follow the live tensors, which a heap that never gives memory back does not (it
        # kept up to 2x more there).
        keep_freed_memory()
    torch.manual_seed(0)
    if args.kind == "step":
        run_step(preset, args.loss, args.out)
    elif args.kind == "trl":
        run_trl(preset, args.out)
    elif args.kind == "teacher_parts":
        run_teacher_parts(preset, args.out)
    elif args.kind == "data":
        run_data_step(preset, args.dataset, args.batching, args.out)
    elif args.kind == "chunked":
        run_chunked(preset["chunked"], preset["device"], args.impl, args.tokens, args.out)
    else:
        run_matmul(preset["matmul"], preset["device"], args.out)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.exit(main())
