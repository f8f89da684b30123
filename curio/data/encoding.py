"""Turn a :class:`Conversation` into token ids and a completion-only loss mask.

Spec section 2: ``input = chat_template(prompt, add_generation_prompt=True) ++ tokens(response)
++ [EOS]``, loss on the response tokens and EOS only. Multi-turn rows are rendered turn by turn:
the text each assistant turn adds to the rendered conversation is supervised, everything else is
not. Labels therefore come from template spans, never from ``ids != pad`` (with ``pad == eos``
that would mask EOS and the model would never learn to stop).
"""

from __future__ import annotations

from dataclasses import dataclass

from curio.data.formats import Conversation
from curio.errors import ConfigError, DataError

PROMPT_OVERFLOW = ("drop", "truncate_left", "error")
RESPONSE_OVERFLOW = ("truncate", "drop")


@dataclass
class Encoded:
    """``loss_mask[i]`` is True when ``input_ids[i]`` is a supervised (predicted) token."""

    input_ids: list[int]
    loss_mask: list[bool]
    truncated: bool = False

    @property
    def num_loss_tokens(self) -> int:
        return sum(self.loss_mask)


class ConversationEncoder:
    """Renders with the tokenizer's chat template and applies the length limits.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        max_prompt_tokens: tokens before the first supervised token (default 1024, spec section 2).
        max_response_tokens: tokens from the first supervised token on (default 8192).
        prompt_overflow: ``drop`` the row (authors' rule), ``truncate_left`` (keep the prompt's end),
            or ``error`` (stop, naming the row).
        response_overflow: ``truncate`` (a cut response has no EOS) or ``drop`` the row.
    """

    def __init__(
        self,
        tokenizer,
        max_prompt_tokens: int = 1024,
        max_response_tokens: int = 8192,
        prompt_overflow: str = "drop",
        response_overflow: str = "truncate",
    ):
        if prompt_overflow not in PROMPT_OVERFLOW:
            raise ConfigError(f"data.prompt_overflow={prompt_overflow!r}: choose one of {list(PROMPT_OVERFLOW)}")
        if response_overflow not in RESPONSE_OVERFLOW:
            raise ConfigError(
                f"data.response_overflow={response_overflow!r}: choose one of {list(RESPONSE_OVERFLOW)}"
            )
        for key, value in (("max_prompt_tokens", max_prompt_tokens), ("max_response_tokens", max_response_tokens)):
            if value < 1:
                raise ConfigError(f"data.{key}={value}: must be >= 1")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "the tokenizer has no chat template: set model.tokenizer.chat_template "
                "(a bundled name such as 'chatml', a .jinja file, or jinja text)"
            )
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no eos_token: set one in its tokenizer_config.json")
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        self.max_response_tokens = max_response_tokens
        self.prompt_overflow = prompt_overflow
        self.response_overflow = response_overflow

    def encode(self, conversation: Conversation) -> tuple[Encoded | None, str | None]:
        """Returns ``(encoded, None)``, or ``(None, reason)`` for a row dropped by a length rule."""
        ids, mask = self._pieces(conversation)
        if not any(mask):
            raise DataError("no supervised token after applying the chat template")
        first = mask.index(True)
        truncated = False
        if first > self.max_prompt_tokens:
            if self.prompt_overflow == "error":
                raise DataError(
                    f"field {conversation.prompt_field!r}: the prompt has {first} tokens, more than "
                    f"data.max_prompt_tokens={self.max_prompt_tokens} (data.prompt_overflow=drop skips such rows)"
                )
            if self.prompt_overflow == "drop":
                return None, "prompt_too_long"
            cut = first - self.max_prompt_tokens
            ids, mask, first = ids[cut:], mask[cut:], self.max_prompt_tokens
        if len(ids) - first > self.max_response_tokens:
            if self.response_overflow == "drop":
                return None, "response_too_long"
            end = first + self.max_response_tokens
            ids, mask, truncated = ids[:end], mask[:end], True
        return Encoded(input_ids=ids, loss_mask=mask, truncated=truncated), None

    def _tokens(self, text: str) -> list[int]:
        # The template text already carries any BOS/special tokens it wants.
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _pieces(self, conversation: Conversation) -> tuple[list[int], list[bool]]:
        eos = self.tokenizer.eos_token_id
        if conversation.response is not None:
            prompt = self._tokens(self._render(conversation.prompt, generation_prompt=True))
            response = self._tokens(conversation.response) + [eos]
            return prompt + response, [False] * len(prompt) + [True] * len(response)

        messages = conversation.messages
        ids: list[int] = []
        mask: list[bool] = []
        rendered = ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._render(messages[:i], generation_prompt=True)
            after = self._render(messages[: i + 1], generation_prompt=False)
            if not before.startswith(rendered) or not after.startswith(before):
                raise ConfigError(
                    "the chat template does not render conversations prefix by prefix (it rewrites "
                    "earlier turns), so assistant spans cannot be located; set a training chat "
                    "template in model.tokenizer.chat_template"
                )
            context = self._tokens(before[len(rendered) :])
            turn = self._tokens(after[len(before) :])
            ids += context + turn
            mask += [False] * len(context) + [True] * len(turn)
            rendered = after
        if eos not in ids[len(ids) - len(turn) :]:
            # The template's end of turn is not the tokenizer's EOS: append it (spec section 2).
            ids.append(eos)
            mask.append(True)
        return ids, mask
