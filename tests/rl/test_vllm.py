"""The vLLM backend on the CPU (``vllm-cpu``), for real: evaluation with it, weight sync into a
colocated engine, and RL rollouts from it.

vLLM pins a transformers older than the project's environment, so these run in a second
environment (``make test`` builds ``.venv-vllm`` and runs ``pytest -m vllm`` there); where vLLM is
not importable they are skipped.
"""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.vllm
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache: enough for these tiny runs
vllm = pytest.importorskip("vllm")

from curio.config import ROOT  # noqa: E402

BASE = ROOT / "assets" / "tiny_world" / "base"


@pytest.fixture(scope="module")
def engine():
    """One colocated engine for the module (starting one takes tens of seconds here)."""
    from curio.evaluation.vllm_generation import VLLMGenerator

    return VLLMGenerator(str(BASE), dtype="float32", progress=False, colocated=True, max_model_len=512,
                         enforce_eager=True, seed=0)


def prompt_logprobs(engine, ids: list[int]) -> torch.Tensor:
    """vLLM's log-probability of each token of ``ids`` after the first (teacher-forced)."""
    params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
    out = engine.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
    return torch.tensor([step[token].logprob for step, token in zip(out.prompt_logprobs[1:], ids[1:])],
                        dtype=torch.float64)


def hf_logprobs(model, ids: list[int], temperature: float = 1.0) -> torch.Tensor:
    with torch.no_grad():
        logp = torch.log_softmax(model.double()(torch.tensor([ids])).logits[0] / temperature, -1)
    return logp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_weights_synced_into_the_engine_give_the_trainers_log_probabilities(engine):
    from transformers import AutoModelForCausalLM

    from curio.rl.backends import full_tensors

    model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    ids = list(range(5, 45))
    before = prompt_logprobs(engine, ids)
    torch.testing.assert_close(before, hf_logprobs(copy.deepcopy(model), ids), rtol=0, atol=1e-4)
    with torch.no_grad():  # what an optimizer step does: every weight moves
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    engine.load_weights(full_tensors(model))
    after = prompt_logprobs(engine, ids)
    assert (after - before).abs().max() > 0.1  # the engine's weights did change ...
    torch.testing.assert_close(after, hf_logprobs(copy.deepcopy(model), ids), rtol=0, atol=1e-4)  # ... to these


def test_samples_carry_tokens_and_log_probabilities_at_the_sampling_temperature(engine):
    from transformers import AutoModelForCausalLM

    from curio.evaluation.sampling import SamplingParams

    model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    engine.load_weights(model.state_dict().items())
    prompt = [3, 4, 5, 6, 7]
    samples = engine.generate([prompt], SamplingParams(n=3, temperature=0.8, max_new_tokens=12, seed=1))[0]
    for sample in samples:
        assert len(sample.token_ids) == sample.num_tokens == len(sample.logprobs) > 0
        expected = hf_logprobs(copy.deepcopy(model), prompt + list(sample.token_ids), 0.8)[len(prompt) - 1:]
        torch.testing.assert_close(torch.tensor(sample.logprobs, dtype=torch.float64), expected, rtol=0, atol=1e-4)


def test_every_sample_of_a_call_has_its_own_random_stream(engine):
    """Two equal prompts in one call get different groups; the same call again, the same samples."""
    from transformers import AutoModelForCausalLM

    from curio.evaluation.sampling import SamplingParams

    engine.load_weights(AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).state_dict().items())
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=16, seed=3)
    first, second = engine.generate([[3, 4, 5, 6, 7]] * 2, params)
    assert [s.token_ids for s in first] != [s.token_ids for s in second]
    assert len({s.token_ids for s in first}) > 1  # and a group's samples differ among themselves
    again = engine.generate([[3, 4, 5, 6, 7]] * 2, params)
    assert [[s.token_ids for s in g] for g in again] == [[s.token_ids for s in g] for g in (first, second)]


def test_prompts_over_a_steps_token_budget_sample_with_seeds(engine):
    # 160 prompts of 40 tokens: more than vLLM's 4096 tokens per engine step, which with chunked
    # prefill splits a prompt across steps, and the CPU build then died rewinding the seeded
    # request's generator ("CPU Generator does not use offset").
    from curio.evaluation.sampling import SamplingParams

    prompts = [[5 + (i + j) % 30 for j in range(40)] for i in range(160)]
    groups = engine.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=3, seed=7))
    assert len(groups) == 160 and all(len(group) == 2 and group[0].token_ids for group in groups)


def test_chunks_draw_what_one_call_draws_and_a_resume_samples_only_the_rest(engine, tmp_path):
    """Calls of 2 prompts x 2 samples give one call's samples (each sample's seed follows its
    prompt's place in the list); a run cut after its first chunk resumes from the kept file,
    asks the engine for the other 3 prompts only, and ends with the same samples."""
    from transformers import AutoModelForCausalLM

    from curio.evaluation.partial import PartialSamples
    from curio.evaluation.sampling import SamplingParams

    engine.load_weights(AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).state_dict().items())
    prompts = [[3, 4, 5, 6, 7], [8, 9, 10], [3, 4, 5, 6, 7], [11, 12, 13, 14], [15, 16]]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=5)
    tokens = lambda groups: [[s.token_ids for s in group] for group in groups]  # noqa: E731
    whole = tokens(engine.generate(prompts, params))
    path = tmp_path / "partial.jsonl"
    engine.chunk_samples = 4
    try:
        assert tokens(engine.generate(prompts, params, partial=PartialSamples(path))) == whole
        lines = path.read_text().splitlines()
        assert len(lines) == 1 + 3  # the key, then chunks of 2, 2 and 1 prompts
        path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:50])  # killed while writing the second
        asked = []
        generate = engine.llm.generate
        engine.llm.generate = lambda requests, *args, **kwargs: asked.append(len(requests)) or \
            generate(requests, *args, **kwargs)
        try:
            resumed = engine.generate(prompts, params, partial=PartialSamples(path))
        finally:
            engine.llm.generate = generate
        assert asked == [2, 1] and tokens(resumed) == whole
    finally:
        engine.chunk_samples = None


def test_eval_with_the_vllm_backend(compose_cfg, tmp_path, tiny_world_tests):
    from curio.evaluation.run import evaluate

    cfg = compose_cfg([f"model.path={BASE}", f"paths.assets_dir={tiny_world_tests}", "benchmarks=[tiny_id]",
                       "limit=4", "sampling.n=2", "sampling.max_new_tokens=48", "generation.backend=vllm",
                       "grading.num_workers=1", "generation.progress=false", "generation.vllm.max_model_len=512",
                       "+generation.vllm.enforce_eager=true", "model.dtype=float32", "generation.chunk_samples=4"],
                      tmp_path, config_name="eval")
    results = evaluate(cfg)
    tiny = results["benchmarks"]["tiny_id"]
    assert tiny["problems"] == 4 and tiny["n"] == 2 and "token_entropy" not in tiny["metrics"]
    assert (tmp_path / "samples.jsonl").read_text().count("\n") == 8
    assert not list((tmp_path / "partial").glob("*.jsonl"))  # its two chunks' file, gone once results are written


@pytest.mark.parametrize("policy", [["optim.lr=3e-5"], ["model.lora.rank=8", "optim.lr=2e-3"]],
                         ids=["full", "lora"])
def test_rl_with_colocated_vllm_rollouts(repo_root, tmp_path, policy):
    """Two rollout steps sampled by the engine: the trainer recomputes the sampler's log-probabilities
    (weights synced before each rollout: a LoRA policy's merged into the plain model's names), and the
    run trains and exports. Each run is a process of its own, so each has its own engine."""
    args = [f"model={BASE}", "rollout=vllm", "rollout.dtype=float32", "rollout.max_model_len=512",
            "rollout.enforce_eager=true", "rl.prompts_per_step=4", "rl.group_size=4", "rl.mini_batches=2",
            "rl.micro_batch_size=8", "rl.sampling.max_new_tokens=64", "trainer.max_steps=4",
            "~callbacks.progress_bar", f"hydra.run.dir={tmp_path}", *policy]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    result = subprocess.run([sys.executable, "rl.py", *args], cwd=repo_root, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rollouts = [r for r in csv.DictReader(f) if r["train/reward_mean"]]
    assert len(rollouts) == 2
    # The second rollout was sampled after two optimizer steps: a stale engine would show here.
    assert all(float(r["train/sampler_logprob_gap"]) < 1e-3 for r in rollouts), rollouts
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file() == ("model.lora.rank=8" in policy)

