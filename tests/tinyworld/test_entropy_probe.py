"""The entropy probe lines each response token up with the position that predicts it."""

import json

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from curio.config import ROOT
from curio.tinyworld.entropy_probe import label_entropies
from curio.tinyworld.labels import label_response

ASSETS = ROOT / "assets" / "tiny_world"


def test_probe_matches_a_direct_computation():
    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "tokenizer")
    rows = [json.loads(line) for line in (ASSETS / "sft_val.jsonl").read_text().splitlines()[:3]]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    out = label_entropies(model, tokenizer, rows, batch_size=2)

    sums, counts = {0: 0.0, 1: 0.0, 2: 0.0}, {0: 0, 1: 0, 2: 0}
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids, labels = label_response(tokenizer, row["messages"][-1]["content"], row["choice_spans"],
                                     row["result_spans"])
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + ids])).logits[0].double()
        p = logits.softmax(-1)
        entropy = -(p * p.log()).sum(-1)
        for k, label in enumerate(labels):
            sums[label] += float(entropy[len(prompt_ids) + k - 1])
            counts[label] += 1
    assert out["tokens"] == {"format": counts[0], "choice": counts[1], "result": counts[2]}
    assert counts[1] > 0
    for label, name in ((0, "format"), (1, "choice"), (2, "result")):
        assert abs(out["mean_entropy"][name] - sums[label] / counts[label]) < 1e-4
