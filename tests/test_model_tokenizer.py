"""Tokenizers: special tokens, the multimodal chat template and assistant-token masks."""

from __future__ import annotations

import pytest

from medmo.model.tokenizer import SPECIAL_TOKENS

CONV = [
    {"role": "system", "content": "You are a helpful medical assistant."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Locate the lesion."}]},
    {"role": "assistant", "content": [{"type": "text", "text": "lesion <box>[[12, 40, 560, 999]]</box>"}]},
    {"role": "user", "content": "And the size?"},
    {"role": "assistant", "content": "<think>measure</think> 3 cm"},
]


@pytest.fixture(scope="module")
def bpe():
    from medmo.model import train_tokenizer

    return train_tokenizer(["the lesion is in the left lung", "no acute findings"], vocab_size=400)


@pytest.fixture(scope="module")
def qwen3():
    from medmo.model import qwen3_tokenizer

    return qwen3_tokenizer()


def test_bpe_has_every_qwen_special_token_as_one_token(bpe):
    ids = [bpe.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS) and bpe.unk_token_id not in ids
    for token, tid in zip(SPECIAL_TOKENS, ids):
        assert bpe.encode(token) == [tid]
    assert bpe.eos_token == "<|im_end|>" and bpe.pad_token == "<|endoftext|>"
    assert len(bpe) <= 400 + 6
    # Byte fallback: any text round-trips, including characters never seen in training.
    text = "Ångström 12 µm — 肺 <box>[[1, 2, 3, 4]]</box>"
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_splits_digits_like_qwen(bpe):
    assert [bpe.decode([i]) for i in bpe.encode("999")] == ["9", "9", "9"]


def test_think_tags_survive_decoding_but_control_tokens_do_not(bpe, qwen3):
    for tok in (bpe, qwen3):
        ids = tok.encode("<|im_start|><think>a</think> b<|im_end|>")
        assert tok.decode(ids, skip_special_tokens=True) == "<think>a</think> b"


def test_chat_template_renders_qwen3_vl_layout(bpe):
    text = bpe.apply_chat_template(CONV[:2], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful medical assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Locate the lesion.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("which", ["bpe", "qwen3"])
def test_assistant_mask_covers_exactly_the_answers(which, request):
    tok = request.getfixturevalue(which)
    out = tok.apply_chat_template(CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    spans, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            spans.append(tok.decode(cur))
            cur = []
    assert spans == ["lesion <box>[[12, 40, 560, 999]]</box><|im_end|>", "<think>measure</think> 3 cm<|im_end|>"]


def test_qwen3_tokenizer_has_qwen3_vl_ids(qwen3):
    from medmo.model.tokenizer import special_token_ids

    assert len(qwen3) == 151669
    assert special_token_ids(qwen3) == {"image_token_id": 151655, "video_token_id": 151656,
                                        "vision_start_token_id": 151652, "vision_end_token_id": 151653}
    assert qwen3.eos_token_id == 151645 and qwen3.pad_token_id == 151643


def test_save_and_reload_keeps_tokens_and_template(bpe, tmp_path):
    from transformers import AutoTokenizer

    bpe.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = bpe.apply_chat_template(CONV, tokenize=False)
    assert again.encode(text) == bpe.encode(text)
    assert again.apply_chat_template(CONV, tokenize=False) == text


def test_too_small_vocab_is_refused():
    from medmo.model import train_tokenizer

    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x"], vocab_size=100)
