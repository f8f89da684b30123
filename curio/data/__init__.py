"""SFT data: sources, row formats, encoding with completion-only masks, batching.

Names are imported lazily, so the command-line checks can use ``curio.data.sources`` without
paying for torch and Lightning.
"""

from importlib import import_module

_EXPORTS = {
    "Collator": "curio.data.collate",
    "SFTBatch": "curio.data.collate",
    "SFTDataModule": "curio.data.datamodule",
    "ConversationEncoder": "curio.data.encoding",
    "Encoded": "curio.data.encoding",
    "Conversation": "curio.data.formats",
    "to_conversation": "curio.data.formats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'curio.data' has no attribute {name!r}")
