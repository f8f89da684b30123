"""The entropy profile: every sampled token's entropy is that of the distribution it was drawn from."""

import json

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from curio.config import ROOT
from curio.evaluation.sampled import render_prompt
from curio.tinyworld.__main__ import main
from curio.tinyworld.entropy_profile import quantile, sampled_token_entropies, summarise

ASSETS = ROOT / "assets" / "fork_world"


def test_quantile_interpolates_between_order_statistics():
    assert quantile([0.0, 1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([0.0, 1.0, 2.0, 3.0, 4.0], 0.8) == pytest.approx(3.2)
    assert quantile([5.0], 0.8) == 5.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_summary_and_targets():
    values = [0.0] * 70 + [0.7] * 20 + [1.5] * 10
    summary = summarise(values)
    assert summary["tokens"] == 100 and summary["median"] == 0.0
    assert summary["share_above_pivot"] == pytest.approx(0.10) and summary["share_above_0.672"] == pytest.approx(0.30)
    assert summary["p80"] == pytest.approx(0.7)
    assert summary["targets_met"] == {"median": True, "p80": True, "share_above_pivot": True}
    assert summarise([0.0] * 100)["targets_met"] == {"median": True, "p80": False, "share_above_pivot": False}


def _model(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


def test_sampled_entropies_equal_a_teacher_forced_float64_recomputation():
    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "tokenizer")
    rows = [json.loads(line) for line in (ASSETS / "sft_val.jsonl").read_text().splitlines()[:3]]
    prompts = [render_prompt(tokenizer, row["messages"][:2]) for row in rows]
    model = _model(tokenizer)
    values, texts = sampled_token_entropies(model, tokenizer, prompts, n=2, max_new_tokens=12, batch_size=4)
    assert len(texts) == 6
    # Recompute: re-sample identically (same seed) to get the token ids, then one teacher-forced
    # forward per sample, entropy in float64 at every position that drew a generated token.
    from curio.evaluation.generation import HFGenerator
    from curio.evaluation.sampling import SamplingParams

    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, seed=0)
    samples = HFGenerator(model, tokenizer, batch_size=4, progress=False).generate(prompts, params)
    expected = []
    for prompt, per_prompt in zip(prompts, samples):
        for sample in per_prompt:
            ids = torch.tensor([list(prompt) + list(sample.token_ids)])
            with torch.no_grad():
                logits = model(ids).logits[0].double()
            p = logits.softmax(-1)
            ent = -(p * p.log()).sum(-1)
            expected += ent[len(prompt) - 1 : len(prompt) - 1 + sample.num_tokens].tolist()
    assert len(values) == len(expected) == sum(s.num_tokens for per in samples for s in per)
    assert max(abs(a - b) for a, b in zip(values, expected)) < 1e-4


def test_profile_command_writes_its_json(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "profile.json"
    main(["profile", "--model", str(tiny_model_dir), "--data", str(ASSETS), "--limit", "2", "--n", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["samples_per_prompt"] == 1 and result["tokens"] > 0
    assert set(result["targets_met"]) == {"median", "p80", "share_above_pivot"}
    assert json.loads(capsys.readouterr().out)["tokens"] == result["tokens"]


def test_the_shipped_base_meets_the_targets_it_was_measured_against():
    """The committed profile belongs to the shipped base (re-measure both together, never one)."""
    profile = json.loads((ASSETS / "entropy_profile.json").read_text())
    assert profile["model"] == "assets/fork_world/base" and profile["tokens"] > 50_000
    assert all(profile["targets_met"].values())
    assert "54c1b81" in (ASSETS / "ENTROPY_PROFILE.md").read_text()
