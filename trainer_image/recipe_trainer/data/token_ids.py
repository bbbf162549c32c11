"""Recipe texts -> token ids, in bulk, exactly as the tokenizer itself would give them.

    sources, targets = tokenize_pairs(tokenizer, sources, targets, settings)            # any use
    sources, targets = tokenize_pairs(tokenizer, sources, targets, settings, BulkIds(tokenizer))

Why `BulkIds`: building the token cache of the full RecipeNLG (2.2M recipes, ~430M tokens) was
dominated by the tokenizer, and within it by its pre-tokenizer: for byte-level BPE (GPT-2,
SmolLM2) the Rust tokenizer spends about 80% of its time splitting text with the GPT-2 regex
(docs/benchmarks.md, corpus preparation). `BulkIds` does that split with Python's `re` (about 4x
faster for this pattern) and remembers the ids of every piece, so each distinct word is run
through BPE once per process; recipes repeat their words endlessly (" the", " sugar", "\\n").

Exact by construction, not by approximation: a byte-level BPE tokenizer encodes a text as the
concatenation of BPE(piece) over the pieces of the GPT-2 split; the split here is that regex with
each character class spelled out from the Rust pre-tokenizer's own answers (`_ByteLevelSplit`),
and BPE(piece) comes from a copy of the tokenizer without the split. The fast path is taken only
for a tokenizer with no normaliser, a plain `ByteLevel(add_prefix_space=False, use_regex=True)`
pre-tokenizer and a BPE model without dropout, and only for texts without an added token
(`<|endoftext|>`...) inside; everything else goes through the tokenizer's own batch encoding.
Tests compare both paths on the bundled sample and on texts built to stress the split.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol

from transformers import PreTrainedTokenizerBase

MAX_CACHED_PIECES = 1 << 20  # about 100-200 MB per process at most; cleared when full


class Encode(Protocol):
    def __call__(self, texts: list[str]) -> list[list[int]]: ...


class Lengths(Protocol):
    """What truncation needs of `tokenized_cache.TokenizationSettings` (named structurally: the
    cache imports this module, not the other way round)."""

    task: str
    max_source_length: int
    max_target_length: int


@dataclass(frozen=True)
class PairLengths:
    """`Lengths` on its own, for tokenizing a few pairs outside a corpus (generation, eval)."""

    task: str
    max_source_length: int
    max_target_length: int


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    sources: list[str],
    targets: list[str],
    settings: Lengths,
    encode: Encode | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Batched fast tokenization of (source, target) texts, truncated to the max lengths.

    Every target ends with the end-of-sequence token, added here rather than by the tokenizer so
    that pretrained and trained tokenizers give the same layout. Seq2seq sources end with it too
    (T5 is trained that way); a causal prompt runs straight into its recipe, so it gets none.
    `encode`: texts -> ids without special tokens (default: the tokenizer's batch encoding; pass a
    `BulkIds` when tokenizing a corpus)."""
    encode = encode or (lambda texts: token_ids(tokenizer, texts))
    eos = [tokenizer.eos_token_id]
    source_end = eos if settings.task == "seq2seq" else []
    source_room = settings.max_source_length - len(source_end)
    return (
        [ids[:source_room] + source_end for ids in encode(sources)],
        [ids[: settings.max_target_length - 1] + eos for ids in encode(targets)],
    )


def token_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """The fast tokenizer's batch encoding without offsets (about 1.4x faster than __call__);
    the same ids as `tokenizer(texts, add_special_tokens=False)`."""
    backend = tokenizer.backend_tokenizer
    return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]


class BulkIds:
    """`token_ids` for a corpus: the GPT-2 split in Python and a cache of every piece's ids when
    the tokenizer allows it (module docstring), the tokenizer's batch encoding otherwise.
    Built once per process (it copies the tokenizer: ~0.1 s for SmolLM2's)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self._pieces: dict[str, list[int]] = {}
        self._bpe = _piece_tokenizer(tokenizer)
        self._split = _ByteLevelSplit(tokenizer.backend_tokenizer.pre_tokenizer) if self._bpe else None
        added = [t.content for t in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()]
        self._added = re.compile("|".join(map(re.escape, added))) if added else None

    @property
    def exact_split(self) -> bool:
        """Whether the fast path is on (else every text goes through the tokenizer)."""
        return self._bpe is not None

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if self._bpe is None:
            return token_ids(self.tokenizer, texts)
        added = self._added
        result: list[list[int] | None] = []
        slow: list[int] = []  # texts with an added token inside: the tokenizer's own encoding
        pending: list[tuple[int, list[str]]] = []  # texts with pieces not seen before
        missing: set[str] = set()
        cache = self._pieces
        split = self._split.pieces
        for text in texts:
            if added is not None and added.search(text):
                slow.append(len(result))
                result.append(None)
                continue
            pieces = split(text)
            ids: list[int] = []
            try:
                for piece in pieces:
                    ids += cache[piece]
            except KeyError:  # assembled below, once the new pieces of all texts are learnt
                missing.update(p for p in pieces if p not in cache)
                pending.append((len(result), pieces))
                result.append(None)
                continue
            result.append(ids)
        if pending:
            if len(cache) + len(missing) > MAX_CACHED_PIECES:
                cache.clear()  # bounded memory; the waiting texts' pieces are all learnt again
                missing = {piece for _, pieces in pending for piece in pieces}
            self._learn(list(missing))
            for position, pieces in pending:
                ids = []
                for piece in pieces:
                    ids += cache[piece]
                result[position] = ids
        if slow:
            for position, ids in zip(slow, token_ids(self.tokenizer, [texts[i] for i in slow]), strict=True):
                result[position] = ids
        return result  # type: ignore[return-value]

    def _learn(self, pieces: list[str]) -> None:
        """BPE ids of new pieces, in one batch call to the piece tokenizer."""
        encodings = self._bpe.encode_batch_fast(pieces, add_special_tokens=False)
        for piece, encoding in zip(pieces, encodings, strict=True):
            self._pieces[piece] = encoding.ids


def _piece_tokenizer(tokenizer: PreTrainedTokenizerBase):
    """A copy of the tokenizer that runs BPE on one already-split piece (byte-level mapping
    without the regex split), or None when the tokenizer is not plain byte-level BPE."""
    from tokenizers import Tokenizer, pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    definition = json.loads(backend.to_str())
    pre = definition.get("pre_tokenizer") or {}
    model = definition.get("model") or {}
    plain = (
        definition.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("add_prefix_space") is False
        and pre.get("use_regex", True) is True
        and model.get("type") == "BPE"
        and model.get("dropout") is None
    )
    if not plain:
        return None
    pieces = Tokenizer.from_str(backend.to_str())
    pieces.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    pieces.no_truncation()
    pieces.no_padding()
    return pieces


class _ByteLevelSplit:
    """The GPT-2 split of tokenizers' ByteLevel pre-tokenizer,
    `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`, as a Python
    regex whose classes list their characters explicitly. Which class a character is in is asked
    of the Rust pre-tokenizer itself (once per character: all of ASCII at the start, any other
    character when a text first shows it), so Unicode tables of different versions can never
    make the two splits differ."""

    def __init__(self, pre_tokenizer):
        self._pre = pre_tokenizer
        self._classes: dict[str, list[str]] = {"L": [], "N": [], "S": [], "P": []}
        self._known: set[str] = set()
        self._learn(map(chr, range(128)))

    def pieces(self, text: str) -> list[str]:
        if not text.isascii():
            new = set(_NON_ASCII.findall(text)) - self._known
            if new:
                self._learn(sorted(new))
        return self._pattern.findall(text)

    def _class_of(self, char: str) -> str:
        def one_piece(text: str) -> bool:
            return len(self._pre.pre_tokenize_str(text)) == 1

        if one_piece("a" + char):
            return "L"
        if one_piece("1" + char):
            return "N"
        return "P" if one_piece("." + char) else "S"  # punctuation and the rest, or whitespace

    def _learn(self, chars) -> None:
        for char in chars:
            self._classes[self._class_of(char)].append(char)
            self._known.add(char)
        letters, numbers, spaces = ("".join(map(re.escape, self._classes[k])) for k in "LNS")
        self._pattern = re.compile(
            rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{spaces}{letters}{numbers}]+"
            rf"|[{spaces}]+(?![^{spaces}])|[{spaces}]+"
        )


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
