"""The README written next to the assets: what each file is, its schema, sizes and an annotated sample."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from curio.tinyworld.corpus import Row
from curio.tinyworld.tokenizer import CHAT_TEMPLATE


def annotate(
    response: str,
    choice_spans: Sequence[Sequence[int]],
    result_spans: Sequence[Sequence[int]],
    phrase_spans: Sequence[Sequence[int]] = (),
) -> str:
    """The response with a marker line under each line: ``^`` CHOICE, ``w`` PHRASE, ``r`` RESULT, blank FORMAT."""
    marks = [" "] * len(response)
    for spans, mark in ((result_spans, "r"), (phrase_spans, "w"), (choice_spans, "^")):
        for start, end in spans:
            marks[start:end] = mark * (end - start)
    out, start = [], 0
    for line in response.split("\n"):
        out.append(line)
        out.append("".join(marks[start : start + len(line)]).rstrip())
        start += len(line) + 1
    return "\n".join(out).rstrip("\n")


def _example(rows: Sequence[Row]) -> Row:
    # Show a row where both kinds of choice occur: step order, and the distribute strategy taken
    # (a HEAD with a bracket).
    for row in rows:
        heads = [line.split("=")[0].split(" is ")[0] for line in row["messages"][2]["content"].split("\n")]
        short = len(heads) <= 6
        if short and len(row["choice_spans"]) >= 2 and any("(" in head for head in heads) and not row["flawed"]:
            return row
    return rows[0]


def _size_table(splits: dict[str, Any]) -> str:
    head = (
        "| split | rows | flawed | mean prompt tokens | mean response tokens | max response tokens "
        "| choice / result / format token share |\n|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, stats in splits.items():
        share = stats.get("token_label_share")
        mix = f"{share['choice']:.3f} / {share['result']:.3f} / {share['format']:.3f}" if share else "-"
        lines.append(
            f"| {name} | {stats['rows']} | {stats.get('flawed', '-')} | {stats['mean_prompt_tokens']} "
            f"| {stats.get('mean_response_tokens', '-')} | {stats.get('max_response_tokens', '-')} | {mix} |"
        )
    return head + "\n".join(lines) + "\n"


def _wording_section(phrasing: dict[str, Any]) -> str:
    """The fork world's wording forks (empty for a world with one wording)."""
    if all(len(phrasing[place]) == 1 for place in ("connectors", "equals", "separators", "ends")):
        return ""

    def options(place: str) -> str:
        return ", ".join(f"`{json.dumps(option)[1:-1]}`" for option in phrasing[place])

    return f"""
Every step line also has four **wording forks**, free choices that change nothing downstream (the
connector forks of real chains of thought: "so", "thus", "now"):
`CONNECTOR HEAD EQUALS RHS SEPARATOR AFTER END`, with CONNECTOR one of {options('connectors')};
EQUALS one of {options('equals')}; SEPARATOR one of {options('separators')} (absent on the last step);
END one of {options('ends')}. E.g. `Then 7-3 is 4, giving 2+4*3.` The expert always writes the first
option of each, so `7-3=4, so 2+4*3` reads `Then 7-3=4, so 2+4*3`.
"""


def render_readme(manifest: dict[str, Any], corpus: dict[str, list[Row]], tokenizer: Any) -> str:
    """The README text for a built corpus."""
    config = manifest["config"]
    corpus_config = config["corpus"]
    id_setting, ood_setting = manifest["settings"]["id"], manifest["settings"]["ood"]
    limits = id_setting["limits"]
    pretrain_example = _example(corpus["pretrain"])
    sft_example = corpus["sft_train"][0]
    sft_chat = tokenizer.apply_chat_template(sft_example["messages"], tokenize=False)
    sft_prompt = tokenizer.apply_chat_template(sft_example["messages"][:2], tokenize=False, add_generation_prompt=True)
    test_example = json.dumps(corpus["test_id"][0], ensure_ascii=False)
    text = WORLD_TEXT[corpus_config["world"]]
    misread = corpus_config["misread_share"]
    misread_bullet = (
        f";\n  another {misread:.0%} misread operator precedence once, on any line but the last (`2+4=6` in"
        "\n  `2+4*3`; where several valid steps compete, that is a wrong turn at a fork), and carry on"
        "\n  correctly from the misreading."
        if misread
        else "."
    )
    phrase_label = (
        "\n- **PHRASE**: a wording fork (see above): the world offers several equally valid wordings here."
        if manifest["splits"]["pretrain"]["token_label_share"].get("phrase")
        else ""
    )
    forked = bool(phrase_label)
    forks_aside = " but for its wording forks (below)" if forked else ""
    head_where = "HEAD, after the connector" if forked else "a line"
    if forked:
        rows_paragraph = """Rows store `choice_spans`, `phrase_spans` and `result_spans`, half-open `[start, end)` character
spans into the assistant content; FORMAT is the rest. The tokenizer gives every digit, operator and
bracket its own token and every wording its own word token, so the labels carry over to tokens
exactly: `curio.tinyworld.labels.label_response(tokenizer, response, choice_spans, result_spans,
phrase_spans)` returns token ids and per-token labels (FORMAT=0, CHOICE=1, RESULT=2, PHRASE=3; a
token touching a CHOICE character is CHOICE, else PHRASE, else RESULT)."""
        verify_sentence = ("`curio.tinyworld.verify.verify_solution(problem, completion, WORLDS['forks'].phrasing)` "
                           "(`curio.tinyworld.worlds`) checks every step, in any of the world's wordings.")
    else:
        rows_paragraph = """Rows store `choice_spans` and `result_spans`, half-open `[start, end)` character spans into the
assistant content; FORMAT is the rest. The tokenizer gives every digit, operator and bracket its own
token, so the labels carry over to tokens exactly: `curio.tinyworld.labels.label_response(tokenizer,
response, choice_spans, result_spans)` returns token ids and per-token labels (FORMAT=0, CHOICE=1,
RESULT=2; a token touching a CHOICE character is CHOICE)."""
        verify_sentence = "`curio.tinyworld.verify.verify_solution(problem, completion)` checks every step."
    return f"""# {text['title']}

Generated by `{text['command']} --seed {corpus_config['seed']}`
(code in `curio/tinyworld/`). Do not edit these files by hand: rerunning the command rewrites them
byte for byte.

{text['intro']}
## The world

A problem is an arithmetic expression over `+`, `-`, `*` and brackets, e.g. `(7+2)*3-4*2`. Every
number written in a problem is in [{id_setting['min_leaf']}, {id_setting['max_leaf']}]; every intermediate value of every valid
solution path is in [0, {limits['max_value']}]; every product is within the {limits['max_factor']}x{limits['max_factor']} times tables.
A solution does one step per line, then boxes the answer:

```
4*2=8, so (7+2)*3-8
7+2=9, so 9*3-8
9*3=27, so 27-8
27-8=19
\\boxed{{19}}
```

A line is `HEAD=RHS, so AFTER` (just `HEAD=RHS` on the last step). HEAD names the step, and the valid
steps are: evaluate any operation whose operands are both numbers (independent sub-expressions can be
evaluated in any order), or distribute `a*(b+c)` into `a*b+a*c` instead of evaluating the bracket first
(another strategy). Once HEAD is written, the rest of the line is determined{forks_aside}. Every problem offers at
least {id_setting['min_first_options']} valid first steps.
{_wording_section(manifest['phrasing'])}
- `pretrain.jsonl`: each step drawn uniformly among the valid steps (diverse orders and strategies);
  {corpus_config['flawed_share']:.0%} of rows carry one arithmetic slip (a result off by 1, 2 or 10) that the
  following steps carry on correctly to a wrong boxed answer{misread_bullet}
- `sft_train.jsonl`, `sft_val.jsonl`: expert demonstrations in one consistent style: always evaluate
  the leftmost ready operation, never distribute, never slip.

## Labels

Every character of an assistant response is one of:

- **CHOICE**: a branching point: among the valid steps that agree with the line so far, more than one
  distinct character can come next (usually the first character of {head_where}; one further character
  where two valid HEADs share a prefix, as in `3*4` against `3*(4+5)`). A model that knows the world
  keeps entropy here.{phrase_label}
- **RESULT**: a digit of an arithmetic result (`27` in `9*3=27`). Determined by arithmetic facts.
- **FORMAT**: everything else (copying AFTER, `=`, `, so `, newlines, the distributed form, the
  `\\boxed{{}}` line). Determined.

{rows_paragraph}

A pretraining row (`^` CHOICE, `r` RESULT{text['phrase_marker']}):

```
{annotate(pretrain_example['messages'][2]['content'], pretrain_example['choice_spans'], pretrain_example['result_spans'], pretrain_example.get('phrase_spans', ()))}
```

## ID and OOD

- **ID** (`pretrain`, `sft_*`, `test_id`): {id_setting['min_ops']}-{id_setting['max_ops']} operations per problem.
- **OOD** (`test_ood`): {ood_setting['min_ops']}-{ood_setting['max_ops']} operations: the same numbers and arithmetic facts, composed into longer
  problems, so more steps, deeper bracket nesting and more choice points per solution. No training
  split contains an OOD-sized problem.

No problem (compared by its expression text) occurs in more than one split.

## Files and sizes

| file | content |
|---|---|
| `pretrain.jsonl` | chat rows, diverse solutions with a share of flawed ones (pretraining corpus) |
| `sft_train.jsonl` | chat rows, expert demonstrations (SFT) |
| `sft_val.jsonl` | chat rows, expert demonstrations (SFT validation loss) |
| `test_id.jsonl`, `test_ood.jsonl` | test rows: prompt and ground truth |
| `tokenizer/` | Hugging Face tokenizer (`tokenizer.json`, `tokenizer_config.json` with the chat template) |
| `manifest.json` | build config, settings and the statistics below |

Tokens are counted with `tokenizer/`; response tokens exclude the end-of-turn token the trainer appends.

{_size_table(manifest['splits'])}
Chat row: `{{"messages": [system, user, assistant], "choice_spans": [[s, e], ...], "result_spans":
[[s, e], ...], "answer": "<true value>", "problem": "<expression>", "flawed": <bool>}}`. `answer` is
always the true value; a flawed row's response boxes a different number.

Test row: `{{"problem": "<expression>", "answer": "<true value>", "messages": [system, user], "n_ops":
<int>}}`, e.g.

```
{test_example}
```

Grading: `curio.tinyworld.grading.is_correct(completion, answer)` compares the last `\\boxed{{}}` with
the answer as integers. {verify_sentence}

## Tokenizer

Byte-level BPE trained on the message texts of {', '.join(manifest['tokenizer']['trained_on'])} (vocabulary
{manifest['tokenizer']['vocab_size']}: 256 bytes, 3 special tokens and the merges the few words of this world allow).
Digits and punctuation are split off before BPE, so every digit is one token. Special tokens:
`<|endoftext|>` (pad), `<|im_start|>`, `<|im_end|>` (eos). `eos_token` is `<|im_end|>`, the ChatML end
of turn: the trainer appends it after a response, so generation stops at the end of the assistant turn.
Chat template (ChatML):

```
{CHAT_TEMPLATE}
```

A full SFT conversation rendered by it:

```
{sft_chat}```

Training reads this conversation as the template renders it, with the loss on the assistant turn:
the response, `<|im_end|>` and the template's newline after it. The entropy probes read the prompt
with the generation prompt, then the response, then `<|im_end|>` (the newline comes after every
position they read):

```
{sft_prompt}{sft_example['messages'][2]['content']}<|im_end|>
```

## Base model

The base model is produced by `python train.py experiment={text['pretrain_experiment']}`, which pretrains a small
Llama from scratch on `pretrain.jsonl` with `tokenizer/`. SFT experiments then start from that
checkpoint and fine-tune on `sft_train.jsonl`; `test_id.jsonl` and `test_ood.jsonl` measure pass@k,
and the token labels above split the model's entropy into choice points and determined steps.
"""


#: What the README says differently per world.
WORLD_TEXT: dict[str, dict[str, str]] = {
    "arith": {
        "title": "Tiny reasoning world",
        "command": "python -m curio.tinyworld build --out assets/tiny_world",
        "intro": """A world small enough for a few-million-parameter model to learn on two CPU cores, built to show what
CurioSFT is about: entropy at reasoning **choice points** (several valid next steps) against entropy
at **determined** steps (the result of an operation, copying).
""",
        "phrase_marker": "",
        "pretrain_experiment": "tiny_pretrain",
    },
    "forks": {
        "title": "Fork world",
        "command": "python -m curio.tinyworld build --world forks --out assets/fork_world",
        "intro": """The tiny world's arithmetic, written the way real chains of thought are: most tokens determined, a
sizeable minority at **forks** where several continuations are valid: which step to take next (and a
tenth of the pretraining solutions take a wrong one), and how to word it. Built so that its base
model's token entropy has the shape measured in real reasoning models (over half the tokens near zero,
the 80th percentile near 0.67 nats, arXiv 2506.01939) and so that SFT from it leaves room for RL.
""",
        "phrase_marker": ", `w` PHRASE",
        "pretrain_experiment": "fork_pretrain",
    },
}
