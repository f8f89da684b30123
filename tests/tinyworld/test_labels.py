"""Character spans to token labels."""

from __future__ import annotations

from curio.tinyworld.labels import TokenLabel, label_response, positions_to_spans, token_labels

C, R, F = TokenLabel.CHOICE, TokenLabel.RESULT, TokenLabel.FORMAT


def test_positions_to_spans():
    assert positions_to_spans([0, 1, 5, 7, 8]) == [(0, 2), (5, 6), (7, 9)]
    assert positions_to_spans([]) == []


def test_merged_token_takes_the_strongest_label():
    # "3*(" as one token still decides between 3*4 and 3*(..): CHOICE beats FORMAT and RESULT.
    offsets = [(0, 3), (3, 4), (4, 6), (6, 8), (8, 8)]
    assert token_labels(offsets, choice_spans=[(2, 3)], result_spans=[(4, 5), (6, 7)]) == [C, F, R, R, F]


def test_label_response_on_a_real_tokenization(tokenizer):
    response = "2*3=6, so 6+4*5\n4*5=20, so 6+20\n6+20=26\n\\boxed{26}"
    ids, labels = label_response(tokenizer, response, [(0, 1)], [(4, 5), (20, 22), (37, 39)])
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # fmt: off
    assert tokens == [
        "2", "*", "3", "=", "6", ",", "Ġso", "Ġ", "6", "+", "4", "*", "5", "Ċ",
        "4", "*", "5", "=", "2", "0", ",", "Ġso", "Ġ", "6", "+", "2", "0", "Ċ",
        "6", "+", "2", "0", "=", "2", "6", "Ċ",
        "\\", "boxed", "{", "2", "6", "}",
    ]
    assert labels == [
        C, F, F, F, R, F, F, F, F, F, F, F, F, F,
        F, F, F, F, R, R, F, F, F, F, F, F, F, F,
        F, F, F, F, F, R, R, F,
        F, F, F, F, F, F,
    ]
    # fmt: on
