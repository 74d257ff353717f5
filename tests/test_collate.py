"""Encoding records for training: assistant-only labels, exact lengths, padding, truncation."""

from __future__ import annotations

import pytest
import torch

from medmo.train.collate import IGNORE_INDEX, PaddingCollator, assistant_labels, select_records, truncate


def test_assistant_labels_keep_answers_and_their_end():
    header, end = [1, 7, 9], 2  # <|im_start|> assistant \n ; <|im_end|>
    ids = torch.tensor([1, 5, 9, 40, 41, 2, 9, 1, 7, 9, 50, 51, 2, 9, 1, 5, 9, 60, 2, 1, 7, 9, 70, 2])
    labels = assistant_labels(ids, header, end)
    kept = ids[labels != IGNORE_INDEX].tolist()
    assert kept == [50, 51, 2, 70, 2]
    assert labels[:10].eq(IGNORE_INDEX).all()


def test_assistant_labels_unterminated_answer():
    labels = assistant_labels(torch.tensor([1, 7, 9, 50, 51]), [1, 7, 9], 2)
    assert labels.tolist() == [IGNORE_INDEX] * 3 + [50, 51]


@pytest.fixture(scope="module")
def encoded(tiny_model_dir, tmp_path_factory):
    from medmo.data.synth import build_nano
    from medmo.model import load
    from medmo.train.collate import SampleEncoder, rope_index_of

    paths = build_nano(tmp_path_factory.mktemp("nano"), n_train=2, n_val=1, n_test=1, image_size=64)
    samples = select_records([str(paths["train"])])
    model, processor = load(tiny_model_dir)
    encoder = SampleEncoder(processor, rope_index_of(model), max_length=4096)
    return model, processor, encoder, samples, [encoder(s) for s in samples], str(paths["train"])


def test_labels_are_the_target_text(encoded):
    from medmo.prompts import target_text

    _, processor, _, samples, items, _ = encoded
    tasks = set()
    for s, it in zip(samples, items):
        answer = processor.tokenizer.decode(it.labels[it.labels != IGNORE_INDEX])
        assert answer == target_text(s) + "<|im_end|>"
        tasks.add(s.task)
    assert {"grounding", "closed_vqa", "mcq", "report"} <= tasks


def test_length_estimate_is_exact(encoded):
    _, _, encoder, samples, items, _ = encoded
    assert [encoder.length(s) for s in samples] == [len(it) for it in items]


def test_rope_positions_match_the_model(encoded):
    model, _, _, _, items, _ = encoded
    it = next(i for i in items if i.pixel_values is not None)
    pos, _ = model.model.get_rope_index(it.input_ids[None], it.mm_token_type_ids[None], it.image_grid_thw)
    assert torch.equal(pos[:, 0], it.position_ids)
    assert not torch.equal(it.position_ids[1], it.position_ids[2])  # height/width differ on image tokens


def test_truncation_never_splits_an_image(encoded):
    _, _, _, _, items, _ = encoded
    it = next(i for i in items if i.pixel_values is not None)
    last_visual = int((it.mm_token_type_ids != 0).nonzero().max())
    short = truncate(it, 3)
    assert len(short) == last_visual + 2 and short.pixel_values is it.pixel_values
    assert len(truncate(it, len(it) - 1)) == len(it) - 1
    assert truncate(it, 10_000) is it


def test_padded_batch_matches_samples_alone(encoded):
    from medmo.train.sft import sample_losses

    model, processor, _, _, items, _ = encoded
    items = items[:5]
    collate = PaddingCollator(processor.tokenizer.pad_token_id, pad_to_multiple_of=8)
    batch = collate(items)
    assert batch["input_ids"].shape[1] % 8 == 0
    assert batch["attention_mask"].sum(1).tolist() == [len(it) for it in items]
    with torch.no_grad():
        together = sample_losses(model, batch, len(items))
        alone = torch.cat([sample_losses(model, collate([it]), 1) for it in items])
    assert torch.allclose(together, alone, atol=1e-4)


def test_select_records_filters_and_explains(encoded, tmp_path):
    train = [encoded[-1]]
    vqa = select_records(train, tasks=["closed_vqa"])
    assert vqa and all(s.task == "closed_vqa" for s in vqa)
    assert len(select_records(train, max_samples=3)) == 3
    with pytest.raises(ValueError, match="match tasks"):
        select_records(train, tasks=["retrieval"])


def test_a_resized_box_convention_shows_the_image_at_that_size(encoded):
    # MedMO's SFT sets state boxes in pixels of the image resized to 768 x 768: training shows it so
    import dataclasses

    from medmo.prompts import target_text

    _, processor, encoder, samples, _, _ = encoded
    s = next(s for s in samples if s.task == "grounding")
    ref = s.images[0]
    resized = dataclasses.replace(s, meta={**s.meta, "box_convention": "pixel@32x64"})
    image = encoder.images(resized)[0]
    assert image.size == (32, 64) and encoder.images(s)[0].size == (ref.width, ref.height)
    item = encoder(resized)
    assert len(item) == encoder.length(resized)  # the plan's length counts the shown size
    assert int(item.image_grid_thw.prod()) != int(encoder(s).image_grid_thw.prod())
    x1, y1, x2, y2 = s.boxes[0].box
    assert f"{round(x1 * 32 / ref.width)}" in target_text(resized)
