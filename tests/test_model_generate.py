"""Batched generation on the shared tiny model: order, batching invariance, text-only, errors."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def images():
    from skimage import data

    return [Image.fromarray(data.retina()), Image.fromarray(data.immunohistochemistry())]


def _user(text: str, n_images: int) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}]


def test_batched_matches_one_by_one_in_input_order(tiny_model, images):
    from medmo.model.generate import generate

    model, processor = tiny_model
    convs = [_user("Locate the lesion.", 1), _user("What is this?", 0),
             _user("Describe this medical image in detail, please.", 1), _user("Is it normal?", 2)]
    imgs = [[images[0]], [], [images[1]], images]
    batched = generate(model, processor, convs, imgs, max_new_tokens=6, batch_size=3)
    single = [generate(model, processor, [c], [i], max_new_tokens=6)[0] for c, i in zip(convs, imgs)]
    assert batched == single
    assert len(set(batched)) > 1, "a random tiny model should answer different prompts differently"
    assert processor.tokenizer.padding_side == "right", "generate must restore the padding side"


def test_greedy_text_only_matches_a_manual_argmax_loop(tiny_model):
    import torch

    from medmo.model.generate import generate

    model, processor = tiny_model
    conv = _user("Hello", 0)
    out = generate(model, processor, [conv], None, max_new_tokens=4)
    prompt = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    ids = processor(text=[prompt], return_tensors="pt")["input_ids"]
    eos = set(model.generation_config.eos_token_id)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(4):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt in eos:
                break
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert out == [processor.tokenizer.decode(new, skip_special_tokens=True)]


def test_sampling_returns_one_answer_each(tiny_model):
    from medmo.model.generate import generate

    model, processor = tiny_model
    sampled = generate(model, processor, [_user("Hello", 0)] * 3, [[], [], []], max_new_tokens=4, do_sample=True,
                       temperature=0.8, batch_size=2)
    assert len(sampled) == 3 and all(isinstance(s, str) for s in sampled)


def test_image_count_mismatch_is_a_clear_error(tiny_model, images):
    from medmo.model.generate import generate

    model, processor = tiny_model
    with pytest.raises(ValueError, match="image placeholder"):
        generate(model, processor, [_user("Locate", 1)], [[]])
    with pytest.raises(ValueError, match="image lists"):
        generate(model, processor, [_user("Locate", 1)], [[images[0]], [images[1]]])


def test_no_conversations_no_work(tiny_model):
    from medmo.model.generate import generate

    model, processor = tiny_model
    assert generate(model, processor, [], []) == []
    with pytest.raises(ValueError, match="batch_size"):
        generate(model, processor, [_user("Hi", 0)], None, batch_size=0)


def test_sampling_follows_the_checkpoint_generation_config(tiny_model_dir, tmp_path, monkeypatch):
    """Qwen3-VL ships temperature 0.7, top_p 0.8, top_k 20: sampling uses them unless a value is given."""
    import json
    import shutil

    import transformers.generation.logits_process as lp

    from medmo.model import load
    from medmo.model.generate import generate

    folder = tmp_path / "qwen-like"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.7, top_p=0.8, top_k=20)
    (folder / "generation_config.json").write_text(json.dumps(config))
    model, processor = load(folder)
    seen: list[tuple[str, float]] = []
    for cls, attr in ((lp.TemperatureLogitsWarper, "temperature"), (lp.TopPLogitsWarper, "top_p"),
                      (lp.TopKLogitsWarper, "top_k")):
        real = cls.__init__

        def spy(self, *args, _real=real, _name=attr, **kwargs):
            seen.append((_name, args[0] if args else kwargs[_name]))
            _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    conv = [_user("Hello", 0)]
    generate(model, processor, conv, None, max_new_tokens=2, do_sample=True)
    assert sorted(seen) == [("temperature", 0.7), ("top_k", 20), ("top_p", 0.8)]
    seen.clear()
    generate(model, processor, conv, None, max_new_tokens=2, do_sample=True, temperature=0.3, top_k=0)
    assert sorted(seen) == [("temperature", 0.3), ("top_p", 0.8)]  # top_k=0: off
    seen.clear()
    generate(model, processor, conv, None, max_new_tokens=2)  # greedy by default, whatever the checkpoint says
    assert seen == []
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, processor, conv, None, max_new_tokens=2, do_sample=True, top_p=1.5)
