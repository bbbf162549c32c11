"""Tokenizers for recipe models: trained on the recipes for scratch models, loaded for pretrained ones.

Scratch models (tests, the CPU quickstart) cannot download a tokenizer, so one is trained on the
recipe texts with the `tokenizers` library (byte-pair encoding, a few seconds on the sample) and
wrapped as a transformers `PreTrainedTokenizerFast`, so that the trainer, `save_pretrained` and
`AutoTokenizer.from_pretrained` treat it exactly like a hub tokenizer.

The special tokens follow the architecture the tokenizer is for:

* seq2seq (T5): `<pad>` = 0 (T5 also starts decoding with the pad id), `</s>` = 1, `<unk>` = 2,
  SentencePiece-style word boundaries (the `▁` metaspace), as in T5's own vocabulary;
* causal (GPT-2-like): `<|endoftext|>` = 0 ends every recipe, `<|pad|>` = 1 pads (never attended,
  never a label), byte-level so that no character is ever unknown.

Neither adds special tokens by itself: the tokenized cache appends the end-of-sequence token
explicitly, so trained and pretrained tokenizers produce the same layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

TokenizerKind = Literal["seq2seq", "causal"]

T5_SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
CAUSAL_SPECIAL_TOKENS = {"eos_token": "<|endoftext|>", "pad_token": "<|pad|>"}


def train_recipe_tokenizer(
    texts: Iterable[str], vocab_size: int, kind: TokenizerKind
) -> PreTrainedTokenizerFast:
    """Train a BPE tokenizer on `texts` and wrap it for transformers.

    `kind` picks the special tokens and pre-tokenization of the architecture (module docstring);
    the ids of the special tokens are fixed (0, 1, 2 ...) whatever the corpus.
    """
    if kind == "seq2seq":
        specials = T5_SPECIAL_TOKENS
        backend = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
        backend.normalizer = normalizers.NFKC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        initial_alphabet: list[str] = []
    elif kind == "causal":
        specials = CAUSAL_SPECIAL_TOKENS
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        initial_alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        raise ValueError(f"tokenizer kind must be 'seq2seq' or 'causal', not {kind!r}")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials.values()),
        initial_alphabet=initial_alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials)


def load_pretrained_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a model (hub id or directory); causal models without a pad
    token (GPT-2, Llama) pad with their end-of-sequence token, which is never attended anyway."""
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerBase, kind: TokenizerKind) -> dict[str, int]:
    """The model-config entries that must agree with the tokenizer (for building scratch models):
    vocab_size, pad/eos ids, and for seq2seq the decoder start id (T5 starts with pad)."""
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if kind == "seq2seq":
        ids["decoder_start_token_id"] = tokenizer.pad_token_id
    else:
        ids["bos_token_id"] = tokenizer.eos_token_id
    return ids
