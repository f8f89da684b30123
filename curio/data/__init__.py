"""SFT data: sources, row formats, encoding with completion-only masks, batching."""

from curio.data.collate import Collator, SFTBatch
from curio.data.datamodule import SFTDataModule
from curio.data.encoding import ConversationEncoder, Encoded
from curio.data.formats import Conversation, to_conversation

__all__ = ["Collator", "Conversation", "ConversationEncoder", "Encoded", "SFTBatch", "SFTDataModule", "to_conversation"]
