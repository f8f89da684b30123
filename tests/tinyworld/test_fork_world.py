"""The fork world: wording forks, precedence misreadings, labels, and reproducibility of both worlds."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from curio.tinyworld.build import BuildConfig
from curio.tinyworld.corpus import DEFAULT_CONFIGS, build_corpus, read_jsonl, write_jsonl
from curio.tinyworld.expr import evaluate, parse, render
from curio.tinyworld.grading import extract_boxed, is_correct
from curio.tinyworld.labels import TokenLabel, label_response
from curio.tinyworld.phrasing import Phrasing, Wording, pick_wording
from curio.tinyworld.settings import Limits
from curio.tinyworld.solutions import POLICIES, Misread, write_solution
from curio.tinyworld.steps import misread_steps
from curio.tinyworld.verify import verify_solution
from curio.tinyworld.worlds import WORLDS

ASSETS = Path(__file__).resolve().parents[2] / "assets"
FORKS = WORLDS["forks"].phrasing
SMALL_FORKS = dataclasses.replace(
    DEFAULT_CONFIGS["forks"], pretrain_size=300, sft_train_size=60, sft_val_size=10, test_id_size=20, test_ood_size=20
)


@pytest.fixture(scope="module")
def fork_corpus():
    return build_corpus(SMALL_FORKS)


def test_expert_writes_the_first_wording_and_labels_every_fork():
    solution = write_solution(parse("2*3+4*5"), POLICIES["leftmost"], random.Random(0), Limits(), FORKS)
    assert solution.text == "Then 2*3=6, so 6+4*5\nThen 4*5=20, so 6+20\nThen 6+20=26\n\\boxed{26}"
    assert [solution.text[s:e] for s, e in solution.choice_spans] == ["2"]  # 2*3 or 4*5 first
    assert [solution.text[s:e] for s, e in solution.result_spans] == ["6", "20", "26"]
    phrases = "".join(solution.text[s:e] for s, e in solution.phrase_spans)
    # Per line: the connector's first letter and, Then against Thus, its third; the equals fork ("="
    # against " is "); the separator's first letter after ", "; the end ("\n" against ".\n").
    assert phrases == "Te=s\n" * 2 + "Te=\n"  # no separator on the last step
    assert solution.text.count("\n") == 3 and not solution.flawed


def test_diverse_writer_draws_every_wording():
    rng = random.Random(0)
    seen = {pick_wording(FORKS, rng, diverse=True) for _ in range(2000)}
    for place in ("connector", "equals", "separator", "end"):
        assert {getattr(w, place) for w in seen} == set(getattr(FORKS, place + ("s" if place != "equals" else "")))


def test_one_wording_draws_nothing_so_the_first_world_is_unchanged():
    rng = random.Random(0)
    state = rng.getstate()
    assert pick_wording(Phrasing(), rng, diverse=True) == Wording("", "=", ", so ", "\n")
    assert rng.getstate() == state


def test_phrasing_rejects_duplicates_and_empty_places():
    with pytest.raises(ValueError, match="connectors"):
        Phrasing(connectors=("So ", "So "))
    with pytest.raises(ValueError, match="ends"):
        Phrasing(ends=())


def test_misreadings_are_precedence_slips_only():
    limits = Limits()
    assert {(s.head, render(s.after)) for s in misread_steps(parse("2+4*3"), limits)} == {("2+4", "6*3")}
    assert {(s.head, render(s.after)) for s in misread_steps(parse("7*3-2"), limits)} == {("3-2", "7*1")}
    assert misread_steps(parse("(3+4)*2"), limits) == []  # every adjacent pair is a real operation
    # Right to left is a misreading too; its aftermath (9-15) leaves the limits: the writer's check.
    assert [(s.head, render(s.after)) for s in misread_steps(parse("9-8+7"), limits)] == [("8+7", "9-15")]


def test_a_misread_solution_is_wrong_from_the_fork_on():
    rng = random.Random(0)
    solution = write_solution(parse("2+4*3"), POLICIES["uniform"], rng, Limits(), FORKS, Misread(line=0))
    assert solution.flawed and solution.boxed == 18 and evaluate(parse("2+4*3")) == 14
    errors = verify_solution("2+4*3", solution.text, FORKS)
    assert len(errors) == 1 and "not part of" in errors[0]


def test_fork_corpus_rows_verify_in_any_wording(fork_corpus):
    misread = 0
    for name in ("pretrain", "sft_train"):
        for row in fork_corpus[name]:
            response = row["messages"][2]["content"]
            errors = verify_solution(row["problem"], response, FORKS)
            if not row["flawed"]:
                assert errors == [] and is_correct(response, row["answer"]), (response, errors)
            else:
                assert len(errors) == 1 and extract_boxed(response) != row["answer"], (response, errors)
                misread += "not part of" in errors[0]
    assert misread == round(SMALL_FORKS.misread_share * SMALL_FORKS.pretrain_size)
    # The first world's verifier cannot read the fork world's wordings.
    row = fork_corpus["pretrain"][0]
    assert verify_solution(row["problem"], row["messages"][2]["content"]) != []


def test_pretraining_uses_every_wording_and_the_expert_one(fork_corpus):
    def first_words(rows):
        return {line.split(" ")[0] for row in rows for line in row["messages"][2]["content"].split("\n")[:-1]}

    assert first_words(fork_corpus["pretrain"]) == {c.strip() for c in FORKS.connectors}
    assert first_words(fork_corpus["sft_train"]) == {"Then"}


def test_phrase_tokens_carry_the_forks(fork_corpus, tmp_path):
    from curio.tinyworld.tokenizer import save_tokenizer, train_tokenizer

    tokenizer = train_tokenizer(row["messages"] for name in WORLDS["forks"].tokenizer_splits for row in fork_corpus[name])
    save_tokenizer(tokenizer, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    row = fork_corpus["pretrain"][0]
    ids, labels = label_response(
        tokenizer, row["messages"][2]["content"], row["choice_spans"], row["result_spans"], row["phrase_spans"]
    )
    tokens = tokenizer.convert_ids_to_tokens(ids)
    phrase_tokens = {token for token, label in zip(tokens, labels) if label == TokenLabel.PHRASE}
    # Every connector and separator word is one token, and it is the PHRASE token of its fork.
    words = {c.strip() for c in FORKS.connectors} | {"Ġ" + s.split(" ")[1] for s in FORKS.separators}
    assert phrase_tokens - {"=", "Ġis", ".", "Ċ"} <= words
    assert all(label != TokenLabel.PHRASE for token, label in zip(tokens, labels) if token.isdigit())


@pytest.mark.parametrize("world, folder", [("arith", "tiny_world"), ("forks", "fork_world")])
def test_held_out_and_sft_splits_rebuild_byte_for_byte(tmp_path, world, folder):
    """Held-out and SFT splits are drawn before pretraining, so a build without it reproduces them."""
    config = dataclasses.replace(DEFAULT_CONFIGS[world], pretrain_size=0)
    corpus = build_corpus(config)
    for name in ("test_id", "test_ood", "sft_val", "sft_train"):
        write_jsonl(tmp_path / f"{name}.jsonl", corpus[name])
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (ASSETS / folder / f"{name}.jsonl").read_bytes(), name


def test_committed_fork_world_matches_its_default_config():
    folder = ASSETS / "fork_world"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"] == dataclasses.asdict(BuildConfig(corpus=DEFAULT_CONFIGS["forks"]))
    assert manifest["phrasing"] == json.loads(json.dumps(dataclasses.asdict(FORKS)))
    assert manifest["tokenizer"]["trained_on"] == list(WORLDS["forks"].tokenizer_splits)
    for row in list(read_jsonl(folder / "sft_train.jsonl"))[:50]:
        response = row["messages"][2]["content"]
        assert verify_solution(row["problem"], response, FORKS) == [] and is_correct(response, row["answer"])


def test_unknown_world_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of arith, forks"):
        dataclasses.replace(DEFAULT_CONFIGS["arith"], world="nope")


def test_build_writes_each_world_to_its_own_folder_by_default(tmp_path, monkeypatch):
    from curio.tinyworld.__main__ import main

    monkeypatch.chdir(tmp_path)
    main(["build", "--world", "forks", "--pretrain-size", "20", "--sft-train-size", "5", "--sft-val-size", "2",
          "--test-id-size", "2", "--test-ood-size", "2"])
    assert (tmp_path / "assets" / "fork_world" / "manifest.json").is_file()
    assert not (tmp_path / "assets" / "tiny_world").exists()  # the first world's build is left alone
