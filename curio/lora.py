"""LoRA through the ``peft`` library: the adapters, the teacher's adapter, and their export.

``model.lora.rank > 0`` injects LoRA adapters into the causal LM in place
(:func:`peft.inject_adapter_in_model`), before any FSDP2 sharding, so the model stays a plain
``transformers`` model (``model.base_model`` is still the decoder the losses read) and every rank
shards the one adapter. Only the adapters train; the base weights are frozen.

A teacher on a LoRA student holds no second copy of the base (``curio/teacher/base.py``): the
frozen teacher is the student with its adapters switched off; the lagged, EMA and snapshot teachers
are a second adapter, :data:`TEACHER`, on the same base, synced from the student's :data:`STUDENT`
by their usual rule.

At the end of a run the export writes the merged model (``W + scaling * B @ A``, a plain Hugging
Face checkpoint for ``from_pretrained`` and vLLM) and the student's adapter alone, in peft's format
(``PeftModel.from_pretrained(base, folder)``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from curio.atomic_write import staging_path
from curio.errors import ConfigError

log = logging.getLogger(__name__)

#: The student's adapter (peft's default name) and the teacher's second adapter.
STUDENT = "default"
TEACHER = "teacher"


@dataclass(frozen=True)
class LoraSettings:
    """``model.lora``: rank 0 trains every weight; rank r > 0 trains LoRA adapters only.

    Args:
        rank: the adapters' rank r.
        alpha: scaling numerator: each adapter adds ``(alpha / r) * B @ A``.
        dropout: dropout on each adapter's input (training only; never in a teacher pass).
        target_modules: ``all-linear`` (every linear layer but the output layer) or a list of
            module names (e.g. ``[q_proj, v_proj]``).
    """

    rank: int = 0
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: str | list[str] = field(default="all-linear")

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 0:
            raise ConfigError(f"model.lora.rank={self.rank}: must be an integer >= 0 (0: no LoRA, train every weight)")
        if not self.alpha > 0:
            raise ConfigError(f"model.lora.alpha={self.alpha}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.lora.dropout={self.dropout}: must be in [0, 1)")
        targets = self.target_modules
        if isinstance(targets, str):
            if not targets:
                raise ConfigError("model.lora.target_modules is empty: all-linear or a list of module names")
        elif not targets or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError(f"model.lora.target_modules={targets}: all-linear or a list of module names")

    @classmethod
    def from_config(cls, node: Any) -> LoraSettings:
        """From the ``model.lora`` config node (None or absent: no LoRA)."""
        if node is None:
            return cls()
        values = dict(node)
        unknown = sorted(set(values) - {"rank", "alpha", "dropout", "target_modules"})
        if unknown:
            raise ConfigError(f"model.lora has unknown keys {unknown}: rank, alpha, dropout, target_modules")
        if "target_modules" in values and not isinstance(values["target_modules"], str):
            values["target_modules"] = list(values["target_modules"])
        return cls(**values)

    @property
    def enabled(self) -> bool:
        return self.rank > 0


def apply_lora(model: nn.Module, settings: LoraSettings, seed: int) -> nn.Module:
    """Inject the student's adapters into ``model`` in place and freeze everything else.

    The adapters start from :func:`initial_adapter_weight` with ``seed``: the same values whether
    the model was built whole or on the meta device (``trainer=fsdp``, where each rank fills its
    shards of them with :func:`adapter_start` once sharded).

    Raises:
        ConfigError: when no module matches ``target_modules``, or the output layer is a target
            (the losses project the output layer themselves, chunk by chunk, outside any adapter
            switch).
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
    )
    try:
        inject_adapter_in_model(config, model, adapter_name=STUDENT)
    except ValueError as err:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"model.lora.target_modules={settings.target_modules}: {err}") from err
    if _is_tuner_layer(model.get_output_embeddings()):
        raise ConfigError(
            f"model.lora.target_modules={settings.target_modules} includes the output layer; the losses "
            "project it chunk by chunk and need it frozen: name the decoder's modules only"
        )
    if any(not isinstance(layer.get_base_layer(), nn.Linear) for layer in lora_layers(model)):
        raise ConfigError(f"model.lora.target_modules={settings.target_modules} names a module that is not a "
                          "linear layer (e.g. the embeddings); curio merges and exports linear adapters only")
    with torch.no_grad():
        for name, param in model.named_parameters():
            start = initial_adapter_weight(name, param.shape, seed)
            if start is not None and not param.is_meta:
                param.copy_(start)
    setattr(model, SEED_ATTR, seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("LoRA rank %d on %d modules: %s of %s parameters train (%.2f%%)", settings.rank,
             len(lora_layers(model)), f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return model


#: Set on a model by :func:`apply_lora`: the seed its adapters' starting values are drawn from.
SEED_ATTR = "curio_lora_seed"


def initial_adapter_weight(name: str, shape: torch.Size, seed: int) -> Tensor | None:
    """The starting value of adapter parameter ``name`` (None for any other parameter): peft's
    default rule, ``lora_A`` Kaiming-uniform (a = sqrt 5) and ``lora_B`` zeros (so the adapted
    model starts as the base), with ``lora_A`` drawn from a generator seeded by ``seed`` and the
    layer's name alone: independent of the global random state (which building a model whole or
    on the meta device moves differently), of the rank, and of the adapter, so that the teacher's
    adapter starts equal to the student's."""
    parts = name.split(".")
    if len(parts) < 3 or parts[-3] not in ("lora_A", "lora_B"):
        return None
    if parts[-3] == "lora_B":
        return torch.zeros(shape)
    layer = ".".join(parts[:-3])
    digest = hashlib.sha256(f"{seed}/{layer}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5), generator=generator)


def adapter_start(model: nn.Module) -> Callable[[str, torch.Size], Tensor | None] | None:
    """For a model built on the meta device: ``(name, shape) -> `` an adapter parameter's whole
    starting value (None for other parameters); None when ``model`` has no adapters."""
    seed = getattr(model, SEED_ATTR, None)
    if seed is None:
        return None
    return lambda name, shape: initial_adapter_weight(name, shape, seed)


def _is_tuner_layer(module: nn.Module | None) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def lora_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that carry adapters (peft's tuner layers), in module order."""
    return [m for m in model.modules() if _is_tuner_layer(m)]


def has_lora(model: nn.Module) -> bool:
    return any(_is_tuner_layer(m) for m in model.modules())


def add_teacher_adapter(model: nn.Module) -> None:
    """A second adapter, :data:`TEACHER`, equal to the student's, frozen; the student's stays the
    active, trainable one."""
    from peft import inject_adapter_in_model

    with warnings.catch_warnings():  # "multiple adapters in the model": the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(model.peft_config[STUDENT], model, adapter_name=TEACHER)
    for layer in lora_layers(model):
        layer.set_adapter(STUDENT)  # active again; peft's rule: only the active adapter trains
    student = adapter_tensors(model, STUDENT)
    if any(p.is_meta for p in student):
        # peft leaves a new adapter where it made it (the CPU, float32) when its layer's other
        # adapter is on the meta device: the teacher's goes where the student's is, in its dtype.
        # Both are filled once sharded, from initial_adapter_weight, which gives them equal values.
        for layer in lora_layers(model):
            for attr in layer.adapter_layer_names:
                adapters = getattr(layer, attr)
                if TEACHER in adapters and isinstance(adapters[TEACHER], nn.Module):
                    like = next(adapters[STUDENT].parameters())
                    adapters[TEACHER].to(device=like.device, dtype=like.dtype)
        return
    with torch.no_grad():
        torch._foreach_copy_(adapter_tensors(model, TEACHER), student)


def adapter_tensors(model: nn.Module, name: str) -> list[Tensor]:
    """The parameters of adapter ``name``, in module order (so two adapters pair up by position)."""
    params = []
    for layer in lora_layers(model):
        for attr in layer.adapter_layer_names:  # lora_A, lora_B, (lora_embedding_A, ...)
            adapters = getattr(layer, attr)
            if name in adapters:
                item = adapters[name]
                params += [item] if isinstance(item, nn.Parameter) else list(item.parameters())
    if not params:
        raise ValueError(f"the model has no LoRA adapter named {name!r}")
    return params


@contextmanager
def active_adapter(model: nn.Module, name: str | None) -> Iterator[None]:
    """Run ``model`` with adapter ``name`` (None: no adapter, the base alone) in eval mode (no
    adapter dropout), then restore the student's adapter and the training mode.

    Sets peft's layer state directly rather than with ``set_adapter`` / ``enable_adapters``,
    which also flip ``requires_grad`` (of parameters FSDP2 has already sharded, and that the
    student's graph of this step holds).
    """
    layers = lora_layers(model)
    saved = [(layer._active_adapter, layer._disable_adapters) for layer in layers]
    # Each module's own mode: a model loaded with from_pretrained starts in eval mode while the
    # adapters peft adds to it are in train mode, so one flag for the whole model would not do.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        for layer in layers:
            layer._disable_adapters = name is None
            if name is not None:
                layer._active_adapter = [name]
        yield
    finally:
        for layer, (active, disabled) in zip(layers, saved):
            layer._active_adapter, layer._disable_adapters = active, disabled
        for module, training in modes:
            module.training = training


# ------------------------------------------------------------------------------------- export
def _named_lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if _is_tuner_layer(m)]


def base_name(name: str) -> str:
    """The plain model's name of a parameter of an adapted model (peft keeps an adapted layer's
    own weights under ``base_layer``): ``q_proj.base_layer.weight`` -> ``q_proj.weight``."""
    return name.replace(".base_layer.", ".", 1)


def merged_state_dict(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` (the LoRA model's full state dict) with each adapted weight merged,
    ``W + scaling * B @ A`` (computed in float32, stored in W's dtype), under the plain model's
    names; adapter tensors (the student's and the teacher's) are dropped."""
    return dict(merged_tensors(model, state, lambda tensor: tensor))


def merged_tensors(model: nn.Module, state: dict[str, Any],
                   whole: Callable[[Any], Tensor]) -> Iterator[tuple[str, Tensor]]:
    """:func:`merged_state_dict` one tensor at a time, in ``state``'s order: ``whole(state[key])``
    gives a tensor entire (e.g. gathers an FSDP2 shard: every rank must then iterate alike), asked
    for the base weight and its two adapter matrices of each adapted layer when its turn comes."""
    scaling = {name: float(layer.scaling[STUDENT]) for name, layer in _named_lora_layers(model)}
    for key, value in state.items():
        prefix, sep, rest = key.partition(".base_layer.")
        if sep and prefix in scaling:
            value = whole(value)
            if rest == "weight":
                a = whole(state[f"{prefix}.lora_A.{STUDENT}.weight"]).float()
                b = whole(state[f"{prefix}.lora_B.{STUDENT}.weight"]).float()
                value = (value.float() + scaling[prefix] * (b @ a)).to(value.dtype)
            yield base_name(key), value
        elif not any(part.startswith("lora_") for part in key.split(".")):
            yield key, whole(value)


def adapter_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The student's adapter under peft's saved names (``base_model.model.<module>.lora_A.weight``)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) >= 3 and parts[-3].startswith("lora_") and parts[-2] == STUDENT:
            out["base_model.model." + ".".join(parts[:-2] + parts[-1:])] = value.contiguous()
    return out


def export_adapter(model: nn.Module, state: dict[str, Tensor], out_dir: str | Path) -> Path:
    """Write the student's adapter alone (``adapter_config.json`` + ``adapter_model.safetensors``)
    to ``out_dir``, through a temporary sibling (a crash mid-write leaves the previous one whole)."""
    from safetensors.torch import save_file

    from curio.export import swap_in

    out_dir = Path(out_dir)
    tmp = staging_path(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = model.peft_config[STUDENT].to_dict()
    config["base_model_name_or_path"] = getattr(model, "name_or_path", None) or None
    config["inference_mode"] = True
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(adapter_state_dict(state), str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
    return swap_in(tmp, out_dir)


# -------------------------------------------------------------------------------- checkpoints
#: The checkpoint entry of a LoRA run whose frozen base weights were left out of it.
LEFT_OUT = "curio_lora_frozen_base"


def leave_out_frozen_base(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Drop a LoRA run's frozen base weights from ``checkpoint["state_dict"]`` (``module`` is the
    LightningModule): the run rebuilds them from its model config on resume, so a checkpoint holds
    the adapters (the student's and a teacher's), the optimizer state and what resuming needs,
    not a second copy of the model. The weights' names and a fingerprint of each (float64 sum and
    sum of squares) stay, for :func:`restore_frozen_base` to check the rebuilt base against.

    A sharded run's (FSDP2) state dict holds each rank's shards (DTensors): the fingerprints are
    summed over the ranks (a collective: every rank saves alike), and
    :meth:`curio.parallel.FSDP2Strategy.load_checkpoint` reads such a checkpoint back without the
    base. A sharded run's consolidated checkpoint (``save_distributed_checkpoint: false``: whole
    tensors on rank 0, nothing on the others) stays whole: Lightning loads it strictly.
    """
    from torch.distributed.tensor import DTensor

    from curio.export import is_sharded

    model = getattr(module, "model", None)
    if model is None or not has_lora(model):
        return
    state = checkpoint["state_dict"]
    if is_sharded(model) and not any(isinstance(value, DTensor) for value in state.values()):
        return
    keys = _frozen_base_keys(module, state)
    checkpoint[LEFT_OUT] = {"keys": keys, "fingerprints": _fingerprints(state, keys)}
    for key in keys:
        del state[key]


def restore_frozen_base(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Put the frozen base weights :func:`leave_out_frozen_base` dropped back into ``checkpoint``,
    from ``module`` (rebuilt from the run's model config), once checked to be the same weights.

    Raises:
        ConfigError: the rebuilt model is not the base the checkpoint was trained on.
    """
    left_out = checkpoint.pop(LEFT_OUT, None)
    if left_out is None:
        return
    current = module.state_dict()
    keys = left_out["keys"]
    missing = [key for key in keys if key not in current]
    if missing:
        raise ConfigError(f"this LoRA checkpoint's base model had {missing[:3]} ({len(missing)} tensors) that this "
                          "run's model has not: resume with the model.* settings it was trained with")
    for key, saved, now in zip(keys, left_out["fingerprints"], _fingerprints(current, keys)):
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(saved, now)):
            raise ConfigError(f"this LoRA checkpoint was trained on another base model ({key} differs from this "
                              "run's): resume with the model.* settings it was trained with")
    if "state_dict" in checkpoint:  # a sharded checkpoint has none: the base was left in the module
        state = checkpoint["state_dict"]
        for key in keys:
            state[key] = current[key]


def _frozen_base_keys(module: nn.Module, state: dict[str, Any]) -> list[str]:
    """The state-dict keys of ``module``'s frozen parameters that are not adapters (tied ones too)."""
    frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
    return [key for key in state if key in frozen and not any(part.startswith("lora_") for part in key.split("."))]


#: Elements per float64 block of a fingerprint: a 7B model's embedding is never copied whole.
FINGERPRINT_BLOCK = 1 << 22


def _fingerprints(state: dict[str, Any], keys: list[str]) -> list[tuple[float, float]]:
    """Each weight's float64 sum and sum of squares, a block of :data:`FINGERPRINT_BLOCK` elements at
    a time (32 MiB of float64, whatever the tensor's size). A DTensor's (an FSDP2 shard's) are its
    local shard's, summed over the mesh dimensions it is sharded on, in one collective per mesh
    and dimension on the mesh's device (NCCL takes no CPU tensors, and a saved state dict is
    offloaded to the CPU): every rank must call this alike."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    table = torch.zeros(len(keys), 2, dtype=torch.float64)  # this rank's part of each weight
    sharded: dict[tuple[int, tuple], list[int]] = {}  # (mesh, placements) -> rows to sum over ranks
    meshes = {}
    for row, key in enumerate(keys):
        tensor = state[key].detach()
        local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
        for block in local.reshape(-1).split(FINGERPRINT_BLOCK):
            values = block.double()
            table[row] += torch.stack([values.sum(), values.square().sum()]).cpu()
        if isinstance(tensor, DTensor):
            meshes[id(tensor.device_mesh)] = tensor.device_mesh
            sharded.setdefault((id(tensor.device_mesh), tuple(tensor.placements)), []).append(row)
    for (mesh_id, placements), rows in sharded.items():
        mesh = meshes[mesh_id]
        part = table[rows].to(mesh.device_type)
        for dim, placement in enumerate(placements):
            if placement.is_shard():
                dist.all_reduce(part, group=mesh.get_group(dim))
        table[rows] = part.cpu()
    return [(total, squares) for total, squares in table.tolist()]
