"""Sharded data parallelism (FSDP2) for the student and its teacher copy.

``trainer=fsdp`` selects :class:`FSDP2Strategy`, Lightning's ``ModelParallelStrategy`` with
every device in one data-parallel dimension (no tensor parallelism). ``SFTModule.configure_model``
then calls :func:`apply_fsdp2`, which shards:

- every decoder layer (the classes named in the model's ``_no_split_modules``) as its own unit,
  parameters gathered before the layer runs and freed after it (``reshard_after_forward``);
- then the root: what is left (embeddings, final norm, output layer; tied or not) is one unit.

The teacher copy (lagged / EMA / frozen) is sharded with the same units on the same mesh, so each
of its local shards has the shape of the student's and the teacher sync
(``curio.teacher.sync.lerp_``) interpolates local tensors with no communication.

**Why the step runs "through the roots".** FSDP2 gathers a unit's parameters in a forward hook of
the module ``fully_shard`` was applied to. The training step never calls the root's ``forward``:
it runs the decoder (``model.base_model``) and then the output layer chunk by chunk inside the
loss, so without help the root's parameters (embeddings, output layer) would still be sharded
there. :class:`FSDP2Strategy` therefore runs ``training_step`` and ``validation_step`` *as* the
forward of each root (Lightning's own "forward redirection" trick, as used for DDP): the roots'
parameters are gathered once before the step and

- the student's root stays gathered through the loss and its backward (FSDP's default for a
  root), and is reduce-scattered and freed once, when the backward ends (one all-gather and one
  reduce-scatter of the output layer per micro-batch, however many loss chunks);
- the teacher's root is freed as soon as the step returns (the teacher has no backward);
- after a validation step (no backward), the student's root is freed explicitly.

So between steps every parameter is a sharded ``DTensor``: the optimizer, gradient clipping,
the teacher sync and checkpointing all see local shards.

Mixed precision: ``mixed_precision: bf16`` is FSDP2's ``MixedPrecisionPolicy(param_dtype=bf16,
reduce_dtype=fp32)`` over float32 sharded master weights (the optimizer updates float32);
``null`` keeps everything in float32; ``auto`` (the preset) is ``bf16`` on GPUs and ``null`` on
the CPU. Activation checkpointing is the one mechanism
of every strategy, ``module.gradient_checkpointing=true`` (non-reentrant, per decoder layer).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from curio.atomic_write import staging_path
from curio.errors import ConfigError
from curio.lora import LEFT_OUT, adapter_start, has_lora
from curio.models.sharded_loading import is_on_meta, load_local_shards

#: ``mixed_precision`` values: param (compute / all-gather) dtype and gradient reduce dtype.
MIXED_PRECISION: dict[str, tuple[torch.dtype, torch.dtype]] = {
    "bf16": (torch.bfloat16, torch.float32),
}


def mixed_precision_policy(name: str | None, device: torch.device | None = None):
    """``bf16`` -> ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``; None -> fp32.

    ``auto`` is ``bf16`` on a GPU and float32 on the CPU (where bf16 matmuls are slow and the
    tests compare with float32 runs).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if name == "auto":
        name = "bf16" if device is not None and device.type != "cpu" else None
    if name is None:
        return MixedPrecisionPolicy()
    if name not in MIXED_PRECISION:
        choices = ["auto", *MIXED_PRECISION]
        raise ConfigError(f"trainer.strategy.mixed_precision={name!r}: choose null or one of {choices}")
    param_dtype, reduce_dtype = MIXED_PRECISION[name]
    return MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The model's decoder layers: modules whose class is named in ``model._no_split_modules``."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise ConfigError(
            f"{type(model).__name__} does not name its decoder layer classes (_no_split_modules): "
            "cannot shard it layer by layer with trainer=fsdp"
        )
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(f"no module of {type(model).__name__} is one of its _no_split_modules {sorted(names)}")
    return layers


def apply_fsdp2(
    model: nn.Module,
    teacher_model: nn.Module | None,
    mesh,
    mp_policy=None,
    reshard_after_forward: bool = True,
    device: torch.device | None = None,
) -> list[nn.Module]:
    """Shard ``model`` (and ``teacher_model``, with the same units) in place with ``fully_shard``.

    Each decoder layer is one unit, then the root (embeddings, final norm, output layer). The
    teacher's root reshards after its forward (it has no backward); the student's root keeps
    FSDP's root default (gathered until its backward ends).

    Args:
        model: the student, a ``transformers`` causal LM, unsharded.
        teacher_model: the teacher's copy (``teacher.model``), or None (no teacher / live).
        mesh: a 1-D data-parallel ``DeviceMesh``.
        mp_policy: a ``MixedPrecisionPolicy`` (None: float32 throughout).
        reshard_after_forward: free each layer's gathered parameters after its forward (and
            gather again in the backward); False trades memory for one all-gather less per layer.
        device: where a model built on the meta device gets its shards (the rank's device).

    Returns:
        the root modules, student first: what :class:`FSDP2Strategy` runs each step through.
    """
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    mp_policy = mp_policy or MixedPrecisionPolicy()
    if isinstance(model, FSDPModule):  # configure_model runs again for validate/test: already done
        return [m for m in (model, teacher_model) if m is not None]
    roots = []
    for net, is_teacher in ((model, False), (teacher_model, True)):
        if net is None:
            continue
        for layer in decoder_layers(net):
            fully_shard(layer, mesh=mesh, mp_policy=mp_policy, reshard_after_forward=reshard_after_forward)
        # The student's root: FSDP's default for a root (None: kept gathered until the backward).
        fully_shard(net, mesh=mesh, mp_policy=mp_policy, reshard_after_forward=True if is_teacher else None)
        if is_on_meta(net):  # built on the meta device (big models): each rank reads its own shards
            load_local_shards(net, device or torch.device(mesh.device_type), initial=adapter_start(net))
        roots.append(net)
    return roots


def fsdp_roots(module: nn.Module) -> list[nn.Module]:
    """The outermost ``fully_shard`` modules under ``module`` (pre-order: the student first)."""
    from torch.distributed.fsdp import FSDPModule

    roots: list[nn.Module] = []
    inside: set[int] = set()
    for m in module.modules():
        if id(m) in inside:
            continue
        if isinstance(m, FSDPModule):
            roots.append(m)
            inside.update(id(sub) for sub in m.modules())
    return roots


class _Hidden:
    """Hides a step's output from a root's post-forward hook (no pre-backward hook on it).

    The teacher's root runs no backward: registering FSDP's pre-backward hook on the loss would
    gather the teacher's root again during the student's backward, for nothing.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def run_through_roots(roots: list[nn.Module], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` as the ``forward`` of each root in turn (outermost first).

    Each root's FSDP pre-forward hook gathers its parameters (and, the first time, sets up FSDP's
    root state over its layers), and its post-forward hook frees them if that root reshards after
    forward. The roots' real ``forward`` is restored before ``fn`` runs.
    """
    if not roots:
        return fn(*args, **kwargs)
    root, rest = roots[0], roots[1:]
    # Only a root that runs a backward (has trainable parameters) hooks its pre-backward on the output.
    wants_backward = any(p.requires_grad for p in root.parameters())

    def forward(*a: Any, **k: Any) -> Any:
        root.__dict__.pop("forward", None)
        out = run_through_roots(rest, fn, *a, **k)
        return out if wants_backward else _Hidden(out)

    root.forward = forward
    try:
        out = root(*args, **kwargs)
    finally:
        root.__dict__.pop("forward", None)
    return out.value if isinstance(out, _Hidden) else out


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` as plain FSDP2: all devices of all nodes shard the model.

    Args:
        mixed_precision: ``bf16`` (bf16 parameters for compute and all-gather, float32 gradient
            reduce, float32 master weights), null (float32 throughout), or ``auto``
            (``bf16`` on GPUs, null on the CPU).
        reshard_after_forward: free each decoder layer's gathered parameters after its forward.
        data_parallel_size: ``auto`` = every device of every node (``num_nodes x devices``).
        save_distributed_checkpoint: True writes checkpoints as a folder of per-rank shards
            (``last.ckpt/``); False gathers a single file on rank 0 (slow, needs the whole model
            in rank 0's CPU memory).
        process_group_backend, timeout: as for ``ModelParallelStrategy``.
    """

    def __init__(
        self,
        mixed_precision: str | None = "auto",
        reshard_after_forward: bool = True,
        data_parallel_size: int | str = "auto",
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ):
        super().__init__(
            data_parallel_size=data_parallel_size,
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )
        mixed_precision_policy(mixed_precision)  # fail on a bad value now, not in configure_model
        self.mixed_precision = mixed_precision
        self.reshard_after_forward = reshard_after_forward
        self._roots: list[nn.Module] | None = None

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    @property
    def data_parallel_mesh(self):
        return self.device_mesh["data_parallel"]

    def shard(self, model: nn.Module, teacher_model: nn.Module | None) -> None:
        """Shard the student and the teacher copy (called from ``SFTModule.configure_model``)."""
        apply_fsdp2(
            model,
            teacher_model,
            self.data_parallel_mesh,
            mixed_precision_policy(self.mixed_precision, self.root_device),
            self.reshard_after_forward,
            self.root_device,
        )
        self._roots = None

    @property
    def roots(self) -> list[nn.Module]:
        if self._roots is None:
            assert self.lightning_module is not None
            self._roots = fsdp_roots(self.lightning_module)
        return self._roots

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options: Any | None = None) -> None:
        """Sharded checkpoints go to ``<path>.tmp/`` first and replace ``<path>`` once every rank
        has written its shard, so a crash mid-write leaves the previous checkpoint whole."""
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        path = Path(self.broadcast(str(filepath)))
        tmp, old = staging_path(path), path.with_name(path.name + ".old")
        if self.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
        self.barrier("checkpoint_tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier("checkpoint_written")
        if self.is_global_zero:
            shutil.rmtree(old, ignore_errors=True)
            if path.is_dir():
                path.rename(old)
            elif path.exists():
                path.unlink()
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier("checkpoint_renamed")

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's loading, but for a LoRA run's sharded checkpoint, which leaves the frozen base
        out (:func:`curio.lora.leave_out_frozen_base`): the adapters and the optimizer state are
        read into the module, the base stays as the run rebuilt it, and the module's
        ``on_load_checkpoint`` then checks that base against the checkpoint's fingerprints."""
        from lightning.fabric.utilities.load import _METADATA_FILENAME
        from torch.distributed.checkpoint import load
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions, get_model_state_dict, get_optimizer_state_dict, set_optimizer_state_dict)

        path = Path(self.broadcast(str(checkpoint_path)))
        if not (path / _METADATA_FILENAME).is_file():  # one consolidated file: loaded whole and strictly
            return super().load_checkpoint(path, weights_only=weights_only)
        metadata = torch.load(path / _METADATA_FILENAME, weights_only=weights_only)  # small: no tensors
        if LEFT_OUT in metadata and not has_lora(self.lightning_module):
            raise ConfigError(f"{path} was written by a LoRA run (its base left out): resume it with the "
                              "model.lora settings it was trained with")
        if LEFT_OUT not in metadata:  # the whole state (a full run, or LoRA before the base was left out)
            return super().load_checkpoint(path, weights_only=weights_only)
        left_out = set(metadata[LEFT_OUT]["keys"])
        state = {key: value for key, value in get_model_state_dict(self.model).items() if key not in left_out}
        load({"state_dict": state}, checkpoint_id=path)
        self.model.load_state_dict(state, strict=False)
        for index, optimizer in enumerate(self.optimizers):
            key = f"optimizer_{index}"
            optimizer_state = {key: get_optimizer_state_dict(self.model, optimizer)}
            load(optimizer_state, checkpoint_id=path)
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=optimizer_state[key],
                                     options=StateDictOptions(cpu_offload=True))
        return metadata

    def training_step(self, *args: Any, **kwargs: Any):
        assert self.lightning_module is not None
        with self.precision_plugin.train_step_context():
            if not self.lightning_module.automatic_optimization:
                # A manual step (RL: generation, then several forwards, backwards and optimizer
                # steps) gathers the roots around each of its forwards itself, with run_forward.
                return self.lightning_module.training_step(*args, **kwargs)
            return run_through_roots(self.roots, self.lightning_module.training_step, *args, **kwargs)

    def run_forward(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` as the forward of every root: the roots' parameters are gathered
        for it, and a root that runs a backward stays gathered until the backward of what ``fn``
        returns (tensors, or tuples / dicts of them) ends."""
        return run_through_roots(self.roots, fn, *args, **kwargs)

    def validation_step(self, *args: Any, **kwargs: Any):
        assert self.lightning_module is not None
        with self.precision_plugin.val_step_context():
            out = run_through_roots(self.roots, self.lightning_module.validation_step, *args, **kwargs)
        self.reshard()
        return out

    def test_step(self, *args: Any, **kwargs: Any):
        assert self.lightning_module is not None
        with self.precision_plugin.test_step_context():
            out = run_through_roots(self.roots, self.lightning_module.test_step, *args, **kwargs)
        self.reshard()
        return out

    def predict_step(self, *args: Any, **kwargs: Any):
        assert self.lightning_module is not None
        with self.precision_plugin.predict_step_context():
            out = run_through_roots(self.roots, self.lightning_module.predict_step, *args, **kwargs)
        self.reshard()
        return out

    def reshard(self) -> None:
        """Free every root's gathered parameters (no backward follows a validation step)."""
        for root in self.roots:
            root.reshard()
