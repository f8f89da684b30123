"""LoRA through peft (curio/lora.py): settings, the teacher's adapters, the exports, and training
runs on the tiny model (one process; two processes with FSDP2 are in test_distributed.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from omegaconf import OmegaConf
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from curio.config import CONF_DIR
from curio.errors import ConfigError
from curio.export import export_hf
from curio.lora import (
    STUDENT,
    TEACHER,
    LEFT_OUT,
    LoraSettings,
    active_adapter,
    adapter_tensors,
    add_teacher_adapter,
    apply_lora,
    export_adapter,
    initial_adapter_weight,
    merged_state_dict,
)
from curio.models import build_causal_lm, byte_level_tokenizer
from curio.teacher import FrozenTeacher, LaggedTeacher
from curio.train import train
from tests.test_training import column, read_metrics

TINY = {**OmegaConf.load(CONF_DIR / "model" / "tiny.yaml").net.config, "tie_word_embeddings": True}
SETTINGS = LoraSettings(rank=4, alpha=8.0, dropout=0.1)
IDS = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(1))


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_causal_lm(TINY)


def perturbed(model, name: str, seed: int) -> None:
    """Give adapter ``name`` random values (B starts at zero, which would hide every bug)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_tensors(model, name):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def logits(model, ids=IDS):
    with torch.no_grad():
        return model.eval()(ids).logits


def merged_copy(base_state, lora_model, adapter: str):
    """The plain model with ``adapter``'s B @ A added by hand (an independent merge)."""
    model = tiny()
    model.load_state_dict(base_state)
    layers = dict(lora_model.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            layer = layers.get(name)
            if layer is not None and hasattr(layer, "lora_A") and adapter in layer.lora_A:
                delta = layer.lora_B[adapter].weight.double() @ layer.lora_A[adapter].weight.double()
                module.weight.copy_((module.weight.double() + layer.scaling[adapter] * delta).float())
    return model


@pytest.mark.parametrize(("values", "message"), [
    ({"rank": -1}, "model.lora.rank=-1"),
    ({"rank": 2.5}, "model.lora.rank=2.5"),
    ({"rank": 4, "alpha": 0}, "model.lora.alpha=0"),
    ({"rank": 4, "dropout": 1.0}, "model.lora.dropout=1.0"),
    ({"rank": 4, "target_modules": []}, "model.lora.target_modules"),
    ({"rank": 4, "ranks": 8}, "unknown keys \\['ranks'\\]"),
])
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        LoraSettings.from_config(values)


def test_targets_must_exist_and_must_not_be_the_output_layer():
    with pytest.raises(ConfigError, match="model.lora.target_modules=\\['nope'\\]"):
        apply_lora(tiny(), LoraSettings(rank=4, target_modules=["nope"]), seed=0)
    with pytest.raises(ConfigError, match="not a linear layer"):
        apply_lora(tiny(), LoraSettings(rank=4, target_modules=["embed_tokens"]), seed=0)
    with pytest.raises(ConfigError, match="output layer"):
        apply_lora(build_causal_lm({**TINY, "tie_word_embeddings": False}),
                   LoraSettings(rank=4, target_modules=["q_proj", "lm_head"]), seed=0)


def test_only_the_adapters_train_and_the_teacher_adapter_starts_as_a_frozen_copy():
    model = apply_lora(tiny(), SETTINGS, seed=0)
    # all-linear: the 7 linear layers of each of the 2 decoder layers, not the output layer
    assert sorted({n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad}) == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert len(adapter_tensors(model, STUDENT)) == 2 * 7 * 2
    perturbed(model, STUDENT, 0)
    add_teacher_adapter(model)
    teacher, student = adapter_tensors(model, TEACHER), adapter_tensors(model, STUDENT)
    assert all(torch.equal(t, s) and t.data_ptr() != s.data_ptr() for t, s in zip(teacher, student))
    assert all(s.requires_grad for s in student) and not any(t.requires_grad for t in teacher)


def test_adapters_start_from_the_seed_and_their_names_alone():
    """lora_A Kaiming-uniform (a = sqrt 5: bound 1 / sqrt(fan_in)), lora_B zeros, drawn from the
    seed and the layer's name: whatever the global random state (which building a model whole or
    on the meta device moves differently), different per layer and per seed."""
    torch.manual_seed(123)
    model = apply_lora(tiny(), SETTINGS, seed=0)
    torch.manual_seed(7)
    again = dict(apply_lora(tiny(), SETTINGS, seed=0).named_parameters())
    other_seed = dict(apply_lora(tiny(), SETTINGS, seed=1).named_parameters())
    a_weights = []
    for name, param in model.named_parameters():
        start = initial_adapter_weight(name, param.shape, 0)
        if "lora_" not in name:
            assert start is None, name
            continue
        assert torch.equal(param, start) and torch.equal(param, again[name]), name
        if ".lora_B." in name:
            assert not param.any(), name
        else:
            bound = 1 / math.sqrt(param.shape[1])
            assert param.abs().max() <= bound and param.abs().max() > 0.9 * bound, name
            assert not torch.equal(param, other_seed[name]), name
            a_weights.append(param.flatten()[:16])
    assert len({tuple(w.tolist()) for w in a_weights}) == len(a_weights) == 2 * 7  # no two layers alike


def test_on_the_meta_device_the_teacher_adapter_takes_the_students_place_and_dtype():
    """trainer=fsdp builds a checkpoint's model on the meta device; peft would leave the teacher's
    adapter on the CPU in float32 there (its layer's student adapter being on meta), so a bfloat16
    model's teacher would start in another dtype than the whole-model path gives it."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = build_causal_lm(TINY).to(torch.bfloat16)
    apply_lora(model, SETTINGS, seed=0)
    add_teacher_adapter(model)
    whole = apply_lora(tiny().to(torch.bfloat16), SETTINGS, seed=0)
    add_teacher_adapter(whole)
    for name in (STUDENT, TEACHER):
        assert {(p.device.type, p.dtype) for p in adapter_tensors(model, name)} == {("meta", torch.bfloat16)}, name
        assert {p.dtype for p in adapter_tensors(whole, name)} == {torch.bfloat16}, name
    assert not any(p.requires_grad for p in adapter_tensors(model, TEACHER))


def test_active_adapter_runs_the_named_adapter_and_restores_the_student():
    base = tiny()
    base_state = copy.deepcopy(base.state_dict())
    model = apply_lora(base, SETTINGS, seed=0)
    perturbed(model, STUDENT, 0)
    add_teacher_adapter(model)
    perturbed(model, TEACHER, 1)
    model.train()
    grads_before = [p.requires_grad for p in model.parameters()]
    with active_adapter(model, None):
        assert not model.training
        off = logits(model)
    with active_adapter(model, TEACHER):
        as_teacher = logits(model)
    assert model.training and [p.requires_grad for p in model.parameters()] == grads_before
    torch.testing.assert_close(off, logits(tiny()), rtol=0, atol=0)  # the start model exactly
    torch.testing.assert_close(as_teacher, logits(merged_copy(base_state, model, TEACHER)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits(model), logits(merged_copy(base_state, model, STUDENT)), rtol=1e-5, atol=1e-5)


def test_exports_merge_the_student_adapter_and_write_it_alone_for_peft(tmp_path):
    base = tiny()
    base_state = copy.deepcopy(base.state_dict())
    model = apply_lora(base, SETTINGS, seed=0)
    perturbed(model, STUDENT, 0)
    add_teacher_adapter(model)
    perturbed(model, TEACHER, 1)  # must reach neither export
    want = logits(model)
    state = model.state_dict()
    merged = merged_state_dict(model, state)
    assert merged.keys() == base_state.keys()
    plain = tiny()
    plain.load_state_dict(merged)
    torch.testing.assert_close(logits(plain), want, rtol=1e-5, atol=1e-5)

    folder = export_adapter(model, state, tmp_path / "adapter")
    saved = load_file(folder / "adapter_model.safetensors")
    assert len(saved) == 2 * 7 * 2 and not any(TEACHER in k for k in saved)
    base = tiny()
    base.load_state_dict(base_state)
    reloaded = PeftModel.from_pretrained(base, folder)
    torch.testing.assert_close(logits(reloaded), want, rtol=0, atol=0)


def test_frozen_teacher_on_lora_is_the_start_model_with_no_copy():
    model = apply_lora(tiny(), SETTINGS, seed=0)
    teacher = FrozenTeacher()
    teacher.attach(model)
    perturbed(model, STUDENT, 0)  # the student moves; the teacher must not
    assert teacher.model is None and not list(teacher.parameters())
    mask = torch.ones_like(IDS, dtype=torch.bool)
    view = teacher.at_loss_positions({"input_ids": IDS}, mask, None, None)
    got = view(slice(None), None).logits
    torch.testing.assert_close(got, logits(tiny()).reshape(-1, TINY["vocab_size"]), rtol=1e-5, atol=1e-5)


def test_lagged_teacher_on_lora_syncs_its_adapter_by_the_rule_and_holds_no_second_base():
    model = apply_lora(tiny(), SETTINGS, seed=0)
    teacher = LaggedTeacher(sync_every=2, alpha=0.75)
    teacher.attach(model)
    start = [t.clone() for t in adapter_tensors(model, TEACHER)]
    perturbed(model, STUDENT, 0)
    assert not teacher.before_optimizer_step(2, model)  # steps 1, 2: the start model
    assert all(torch.equal(t, s) for t, s in zip(adapter_tensors(model, TEACHER), start))
    assert teacher.before_optimizer_step(3, model)
    for t, s0, s in zip(adapter_tensors(model, TEACHER), start, adapter_tensors(model, STUDENT)):
        torch.testing.assert_close(t, 0.25 * s0 + 0.75 * s, rtol=1e-6, atol=1e-7)
    # Nothing of the base is held twice: every tensor of student + teacher is the student's own,
    # and besides the base there are exactly two adapters.
    holder = torch.nn.ModuleDict({"model": model, "teacher": teacher})
    base_numel = sum(p.numel() for p in tiny().parameters())
    adapter_numel = sum(p.numel() for p in adapter_tensors(model, STUDENT))
    assert sum(p.numel() for p in holder.parameters()) == base_numel + 2 * adapter_numel
    assert teacher.model is None and not list(teacher.parameters())


def test_active_adapter_restores_each_modules_own_mode():
    """from_pretrained leaves a model in eval mode and peft's new modules in train mode: after a
    teacher pass each module has its own mode back (one flag for the whole model turned the
    student's LoRA dropout off for good after the first step)."""
    model = apply_lora(tiny().eval(), SETTINGS, seed=0)
    add_teacher_adapter(model)
    before = {name: m.training for name, m in model.named_modules()}
    assert set(before.values()) == {True, False}
    with active_adapter(model, TEACHER):
        assert not any(m.training for m in model.modules())
    assert {name: m.training for name, m in model.named_modules()} == before


def test_a_teacher_dtype_with_lora_is_refused():
    with pytest.raises(ConfigError, match="teacher.dtype"):
        LaggedTeacher(dtype="bfloat16").attach(apply_lora(tiny(), SETTINGS, seed=0))


# ---------------------------------------------------------------------------------- training
LORA_RUN = ["loss=curio", "teacher=lagged", "teacher.sync_every=2", "model.lora.rank=4", "model.lora.alpha=8",
            "callbacks.model_checkpoint.save_top_k=-1"]


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    """``tiny()`` saved as a checkpoint folder: the LoRA runs' base (``model=export``), known here."""
    folder = tmp_path_factory.mktemp("base") / "hf"
    export_hf(tiny(), byte_level_tokenizer("chatml"), folder)
    return folder


@pytest.fixture(scope="module")
def lora_overrides(fast, base_folder):
    return [o for o in fast if not o.startswith("model=")] + ["model=export", f"model.path={base_folder}"] + LORA_RUN


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, compose_cfg, lora_overrides):
    run = tmp_path_factory.mktemp("lora")
    train(compose_cfg(lora_overrides, run))
    return run


def checkpoint(run, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step{step:06d}.ckpt", weights_only=True)


def checkpoint_state(run, step: int) -> dict[str, torch.Tensor]:
    state = checkpoint(run, step)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def test_a_lora_run_trains_the_adapter_only_and_syncs_the_teacher_adapter(lora_run):
    assert len(column(read_metrics(lora_run), "train/loss")) == 4
    two, four = checkpoint_state(lora_run, 2), checkpoint_state(lora_run, 4)
    assert two.keys() == four.keys()
    student_b = [k for k in four if ".lora_B.default." in k]
    assert all(not torch.equal(two[k], four[k]) for k in student_b)
    # The teacher adapter synced before step 3 (sync_every 2): no longer the zero-initialised B.
    teacher_b = [k for k in four if ".lora_B.teacher." in k]
    assert len(teacher_b) == len(student_b) and all(two[k].abs().max() == 0 for k in teacher_b)
    assert all(four[k].abs().max() > 0 for k in teacher_b)


def test_a_lora_checkpoint_holds_the_adapters_not_the_base_which_never_moves(lora_run):
    """The frozen base is left out of checkpoints (named and fingerprinted): its fingerprints at
    steps 2 and 4 are the start model's, so the base never moved."""
    base = apply_lora(tiny(), SETTINGS, seed=0).state_dict()
    base_keys = [k for k in base if ".lora_" not in k]
    for step in (2, 4):
        ckpt = checkpoint(lora_run, step)
        assert all(".lora_" in k for k in ckpt["state_dict"])  # adapters (the student's and teacher's) only
        left_out = ckpt[LEFT_OUT]
        assert sorted(k.removeprefix("model.") for k in left_out["keys"]) == sorted(base_keys)
        want = {k: (base[k].double().sum().item(), base[k].double().square().sum().item()) for k in base_keys}
        for key, fingerprint in zip(left_out["keys"], left_out["fingerprints"]):
            assert tuple(fingerprint) == pytest.approx(want[key.removeprefix("model.")], rel=1e-12), key
    full = sum(v.numel() for v in base.values())
    assert sum(v.numel() for v in checkpoint(lora_run, 4)["state_dict"].values()) < full / 5


def test_resuming_a_lora_checkpoint_on_another_base_is_refused(lora_run, tmp_path, compose_cfg, lora_overrides):
    other = tmp_path / "other"
    export_hf(tiny(seed=1), byte_level_tokenizer("chatml"), other)
    overrides = [o for o in lora_overrides if not o.startswith("model.path=")] + [
        f"model.path={other}", f"ckpt_path={lora_run / 'checkpoints' / 'step000002.ckpt'}"]
    with pytest.raises(ConfigError, match="trained on another base model"):
        train(compose_cfg(overrides, tmp_path / "run"))


def test_a_lora_run_exports_the_merged_model_and_the_adapter(lora_run):
    trained = checkpoint_state(lora_run, 4)
    model = apply_lora(tiny(), SETTINGS, seed=0)
    add_teacher_adapter(model)
    missing, unexpected = model.load_state_dict(trained, strict=False)
    assert not unexpected and all(".lora_" not in k for k in missing)  # the base: tiny()'s own
    want = logits(model)
    merged = AutoModelForCausalLM.from_pretrained(lora_run / "hf")
    torch.testing.assert_close(logits(merged), want, rtol=1e-5, atol=1e-5)
    reloaded = PeftModel.from_pretrained(tiny(), lora_run / "adapter")
    torch.testing.assert_close(logits(reloaded), want, rtol=0, atol=0)


def test_a_lora_run_resumes_exactly(lora_run, tmp_path, compose_cfg, lora_overrides):
    train(compose_cfg(lora_overrides + [f"ckpt_path={lora_run / 'checkpoints' / 'step000002.ckpt'}"], tmp_path))
    resumed, straight = read_metrics(tmp_path), read_metrics(lora_run)
    for key in ("train/loss", "train/logq", "train/grad_norm"):
        assert column(resumed, key) == column(straight, key)[2:], key
    final = checkpoint_state(tmp_path, 4)
    assert all(torch.equal(v, checkpoint_state(lora_run, 4)[k]) for k, v in final.items())
    assert math.isfinite(column(resumed, "train/loss")[-1])


def test_a_fingerprint_is_summed_in_blocks_and_equals_the_whole_tensors(monkeypatch):
    """Fingerprints are taken a block at a time (never a whole float64 copy of a large weight); the
    sums equal those of the whole tensor, also when a block boundary falls mid-row."""
    import curio.lora as lora

    gen = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(37, 11, generator=gen) * 3, "b": torch.randn(5, generator=gen), "t": torch.ones(0)}
    keys = ["w", "b", "t"]
    whole = [(float(state[k].double().sum()), float(state[k].double().square().sum())) for k in keys]
    monkeypatch.setattr(lora, "FINGERPRINT_BLOCK", 16)  # 407 elements: 26 blocks, the last partial
    got = lora._fingerprints(state, keys)
    assert [x for pair in got for x in pair] == pytest.approx([x for pair in whole for x in pair], rel=1e-13, abs=1e-12)
