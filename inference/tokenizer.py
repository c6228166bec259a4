"""A small byte-level BPE tokenizer for tiny checkpoints, trained in well under a second.

Real checkpoints ship their own tokenizer; this one exists so ``init-tiny`` produces a complete
Hugging Face directory (any UTF-8 text round-trips, because the alphabet is all 256 bytes).
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE_TOKEN)

_CORPUS = """
The slide shows invasive ductal carcinoma of the breast with moderate nuclear pleomorphism.
Tumour cells form glands, nests and cords within a desmoplastic stroma. Mitoses are frequent.
No lymphovascular invasion is identified. Perineural invasion is present in one focus.
Gleason pattern 3 and pattern 4 glands are seen in the prostate core; grade group 2.
Adenocarcinoma of the colon infiltrates through the muscularis propria into pericolic fat.
Benign epithelium, normal lymph node, reactive changes, necrosis, haemorrhage and fibrosis.
Segment the tumour region. Describe this slide. Is there cancer? What is the grade?
Is there vascular invasion? Is there neural invasion? Where is the lesion located?
Squamous cell carcinoma, keratin pearls, intercellular bridges, dysplasia, in situ, margin clear.
""".strip().splitlines()


def train_tiny_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of at most ``vocab_size`` tokens with ``<s> </s> <pad> <image>``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IMAGE_TOKEN],
    )
