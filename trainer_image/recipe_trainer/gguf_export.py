"""Write a (merged) Hugging Face causal model as one GGUF file: weights, tokenizer, chat template.

Why: people who run small recipe models locally run GGUF files in llama.cpp, Ollama or LM Studio.
The file is written with the `gguf` package's `GGUFWriter` (the library llama.cpp's own converter
uses), following llama.cpp's conventions for the Llama architecture:

* tensor names from `gguf.get_tensor_name_map` (model.layers.0.self_attn.q_proj -> blk.0.attn_q);
* q_proj and k_proj rows permuted from Hugging Face's rotary layout (halves) to GGML's (pairs),
  as llama.cpp's convert_hf_to_gguf.py does; transformers' GGUF loader permutes them back;
* a tied lm_head is left out (llama.cpp then uses token_embd);
* 2-D weights as f16 or q8_0 (`--quant`), norms as f32;
* the tokenizer as GGUF's "gpt2" (byte-level BPE: the token list, types and merges); the
  pre-tokenizer name from tokenizer.json ("smollm" for SmolLM2's digits-then-bytes, "gpt-2" for a
  plain byte-level one); special token ids, add-BOS and the chat template through
  `gguf.SpecialVocab`, which reads them from the saved tokenizer files.

Supported: Llama-family models (`model_type` "llama": SmolLM2, Llama, TinyLlama) with a byte-level
BPE tokenizer, the models this project trains causally. Others are refused with the reason.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

QUANTS = ("f16", "q8_0")
SUPPORTED_MODEL_TYPES = ("llama",)


class UnsupportedModel(ValueError):
    """The model or tokenizer has no GGUF mapping here; the message says what is missing."""


def write_gguf(model: Any, tokenizer: Any, out: str | Path, quant: str = "f16", name: str = "") -> Path:
    """Write `model` (a merged `LlamaForCausalLM`) and its tokenizer to the GGUF file `out`."""
    import gguf

    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModel(
            f"GGUF export supports {', '.join(SUPPORTED_MODEL_TYPES)} models; this one is {config.model_type!r}"
        )
    if quant not in QUANTS:
        raise UnsupportedModel(f"--quant must be one of {', '.join(QUANTS)}, not {quant!r}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise UnsupportedModel("models with rope_scaling are not supported by this exporter")
    out = Path(out)
    arch = gguf.MODEL_ARCH.LLAMA
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    _write_hyperparameters(writer, config, quant, name or out.stem)
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        _write_tokenizer(writer, Path(saved), config.vocab_size)
    _write_tensors(writer, model, arch, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _rope_theta(config: Any) -> float:
    parameters = getattr(config, "rope_parameters", None) or {}
    return float(parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def _write_hyperparameters(writer: Any, config: Any, quant: str, name: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization: how it splits text before BPE."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"]:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    raise UnsupportedModel(f"no llama.cpp pre-tokenizer known for {kinds}; only byte-level BPE tokenizers")


def _write_tokenizer(writer: Any, saved: Path, vocab_size: int) -> None:
    import gguf

    tokenizer_json = json.loads((saved / "tokenizer.json").read_text(encoding="utf-8"))
    if tokenizer_json.get("model", {}).get("type") != "BPE":
        raise UnsupportedModel("only BPE tokenizers can be written as GGUF here")
    vocab = dict(tokenizer_json["model"]["vocab"])
    added = {token["content"]: token for token in tokenizer_json.get("added_tokens", [])}
    vocab.update({content: token["id"] for content, token in added.items()})
    by_id = {index: token for token, index in vocab.items()}
    tokens, types = [], []
    for index in range(vocab_size):  # the embedding may be larger than the tokenizer: unused rows
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(
                gguf.TokenType.CONTROL if added[token].get("special") else gguf.TokenType.USER_DEFINED
            )
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(saved, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)


def _permute(weights: Any, n_head: int) -> Any:
    """Hugging Face's rotary layout (first half, second half) to GGML's (interleaved pairs)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _write_tensors(writer: Any, model: Any, arch: Any, quant: str) -> None:
    import gguf
    import numpy as np

    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and tied:
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedModel(f"no GGUF name for the tensor {hf_name}")
        if data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        elif (
            quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0
        ):
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(
                name, quantized, raw_shape=quantized.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0
            )
        else:
            writer.add_tensor(name, data.astype(np.float16))
