"""From a :class:`~medmo.records.Sample` to model tensors, and a padding collator.

:class:`SampleEncoder` renders a sample with :func:`medmo.prompts.messages` and the processor's chat
template, runs the Qwen3-VL processor (image tokens expanded), and marks the tokens the loss trains on:
the assistant turns only, from after ``<|im_start|>assistant\\n`` through ``<|im_end|>``. Qwen's chat
templates carry no ``{% generation %}`` markers, so the mask is computed from the marker tokens (the
same rule as Qwen's own fine-tuning scripts, QwenLM/Qwen2.5-VL ``qwen-vl-finetune``). Each encoded
sample also carries its own 3-D rope positions from the model's ``get_rope_index``, so that padding
and packing (:mod:`medmo.train.packing`) only have to place them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from medmo.data.images import load_shown, shown_size
from medmo.data.io import read_records
from medmo.model.processor import encode_one
from medmo.prompts import messages

if TYPE_CHECKING:
    from medmo.records import Sample

IGNORE_INDEX = -100
FILLER_ID = "<vision filler>"  # sample_id of SampleEncoder.filler()
RopeIndex = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Encoded:
    """One tokenized training sample (1-D tensors of length L, positions ``(3, L)``)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    mm_token_type_ids: torch.Tensor
    position_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    sample_id: str = ""

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_targets(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def rope_index_of(model: Any) -> RopeIndex:
    """The ``get_rope_index`` of a Qwen3-VL model, whatever wraps it (accelerate, DDP, PEFT)."""
    for module in model.modules():
        if hasattr(module, "get_rope_index") and hasattr(module, "get_vision_position_ids"):
            return module.get_rope_index
    raise ValueError(f"{type(model).__name__} has no get_rope_index; packing needs a Qwen3-VL model")


def assistant_labels(input_ids: torch.Tensor, header: Sequence[int], end_id: int) -> torch.Tensor:
    """Labels that keep the assistant answers (through their ``<|im_end|>``) and ignore all else.

    Args:
        input_ids: 1-D token ids of one conversation.
        header: token ids of ``<|im_start|>assistant\\n``.
        end_id: id of ``<|im_end|>``.
    """
    ids = input_ids.tolist()
    labels = [IGNORE_INDEX] * len(ids)
    n, i = len(header), 0
    while i <= len(ids) - n:
        if ids[i : i + n] != list(header):
            i += 1
            continue
        j = i + n
        while j < len(ids) and ids[j] != end_id:
            labels[j] = ids[j]
            j += 1
        if j < len(ids):
            labels[j] = ids[j]  # learn to stop
        i = j + 1
    return torch.tensor(labels, dtype=torch.long)


class SampleEncoder:
    """Turn records into :class:`Encoded` tensors with one processor and one rope function.

    Args:
        processor: the image-only Qwen3-VL processor of :func:`medmo.model.build_processor`.
        rope_index: the model's ``get_rope_index`` (see :func:`rope_index_of`).
        max_length: truncate longer samples (never inside an image's tokens).
        think: ask for ``<think>``/``<answer>`` answers (:func:`medmo.prompts.messages`).
    """

    def __init__(self, processor: Any, rope_index: RopeIndex, max_length: int = 4096, think: bool = False):
        self.processor = processor
        self.rope_index = rope_index
        self.max_length = max_length
        self.think = think
        tok = processor.tokenizer
        self.header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self.end_id = tok.convert_tokens_to_ids("<|im_end|>")
        # text token counts by conversation: mixtures repeat records (the nano sft mixture lists each
        # grounding record 8 times in its 77k), and templating + tokenizing every record took ~12 s of the
        # nano sft stage's start
        self._text_counts: dict[tuple[str, bool], int] = {}

    def images(self, sample: Sample) -> list:
        """The sample's images as the model is shown them (:func:`medmo.data.images.load_shown`)."""
        out = []
        for ref in sample.images:
            try:
                out.append(load_shown(ref, sample.meta))
            except Exception as e:  # name the record; a bad file must not read as a model bug
                raise ValueError(f"sample {sample.id}: cannot load image {ref.path}: {e}") from e
        return out

    def text(self, sample: Sample) -> str:
        return self.processor.apply_chat_template(messages(sample, with_answer=True, think=self.think), tokenize=False)

    def length(self, sample: Sample) -> int:
        """Token count of :meth:`__call__`'s output without processing pixels (for packing plans).

        Image tokens come from the image size (the record's, else the file's) through the image
        processor's own resize rule, so the count is exact for images whose size is known.
        """
        return min(self._count(sample, with_answer=True), self.max_length)

    def trainable_length(self, sample: Sample) -> int | None:
        """:meth:`length`, or ``None`` when no answer token survives truncation (the sample teaches nothing)."""
        n = self._count(sample, with_answer=True)
        if n <= self.max_length:
            return n
        return self.max_length if self._count(sample, with_answer=False) + 1 < self.max_length else None

    def _count(self, sample: Sample, with_answer: bool) -> int:
        chat = messages(sample, with_answer=with_answer, think=self.think)
        key = (repr(chat), with_answer)  # images appear in it as placeholders; their tokens are counted below
        n = self._text_counts.get(key)
        if n is None:
            text = self.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=not with_answer)
            n = self._text_counts[key] = len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])
        ip = self.processor.image_processor
        for i, ref in enumerate(sample.images):
            width, height = shown_size(sample.meta) or (ref.width, ref.height)
            if width is None or height is None:
                width, height = self.images(sample)[i].size
            n += ip.get_number_of_image_patches(height, width, {}) // ip.merge_size**2 - 1
        return n

    def filler(self) -> Encoded:
        """The smallest image-only item, with no target token: packed beside a text-only micro-batch it runs
        the vision tower without changing the loss or any gradient (it attends to nothing else, nothing
        attends to it). Sharded runs (FSDP, ZeRO-3) need it: there each module's forward gathers its
        parameter shards collectively, so every process must run the vision tower when any one does."""
        from PIL import Image

        side = self.processor.image_processor.patch_size * self.processor.image_processor.merge_size
        text = "<|vision_start|><|image_pad|><|vision_end|>"
        enc = self.processor(text=[text], images=[Image.new("RGB", (side, side))], return_tensors="pt")
        ids, mm, grid = enc["input_ids"][0], enc["mm_token_type_ids"][0], enc["image_grid_thw"]
        pos, _ = self.rope_index(ids[None], mm_token_type_ids=mm[None], image_grid_thw=grid)
        return Encoded(input_ids=ids, labels=torch.full_like(ids, IGNORE_INDEX), mm_token_type_ids=mm,
                       position_ids=pos[:, 0], pixel_values=enc["pixel_values"], image_grid_thw=grid,
                       sample_id=FILLER_ID)

    def __call__(self, sample: Sample) -> Encoded:
        enc = encode_one(self.processor, self.text(sample), self.images(sample))
        ids = enc["input_ids"][0]
        mm = enc.get("mm_token_type_ids")
        mm = mm[0] if mm is not None else torch.zeros_like(ids)
        grid = enc.get("image_grid_thw")
        pos, _ = self.rope_index(ids[None], mm_token_type_ids=mm[None], image_grid_thw=grid)
        item = Encoded(
            input_ids=ids,
            labels=assistant_labels(ids, self.header, self.end_id),
            mm_token_type_ids=mm,
            position_ids=pos[:, 0],
            pixel_values=enc.get("pixel_values"),
            image_grid_thw=grid,
            sample_id=sample.id,
        )
        return truncate(item, self.max_length)


def select_records(
    paths: Sequence[str],
    tasks: Sequence[str] = (),
    sources: Sequence[str] = (),
    max_samples: int | None = None,
) -> list[Sample]:
    """Read record files (JSONL / Parquet / mixture shard folders) and keep the wanted tasks and sources.

    Raises:
        ValueError: nothing is left after filtering (the message shows what the files hold).
    """
    kept, seen = [], {}
    for path in paths:
        for s in read_records(path):
            seen[s.task] = seen.get(s.task, 0) + 1
            if (not tasks or s.task in tasks) and (not sources or s.source in sources):
                kept.append(s)
                if max_samples is not None and len(kept) >= max_samples:
                    return kept
    if not kept:
        raise ValueError(
            f"no training records in {list(paths)} match tasks={list(tasks)} sources={list(sources)}; "
            f"the files hold {seen or 'no valid records'}"
        )
    return kept


def truncate(item: Encoded, max_length: int) -> Encoded:
    """Cut text tokens beyond ``max_length``; image tokens are never split (their pixels must match)."""
    if len(item) <= max_length:
        return item
    visual = (item.mm_token_type_ids != 0).nonzero()
    cut = max(max_length, int(visual.max()) + 2 if len(visual) else 0)
    if cut >= len(item):
        return item
    return Encoded(
        input_ids=item.input_ids[:cut],
        labels=item.labels[:cut],
        mm_token_type_ids=item.mm_token_type_ids[:cut],
        position_ids=item.position_ids[:, :cut],
        pixel_values=item.pixel_values,
        image_grid_thw=item.image_grid_thw,
        sample_id=item.sample_id,
    )


def vision_inputs(items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    """Concatenate pixels and grids in token order (the model scatters them in that order)."""
    with_images = [it for it in items if it.pixel_values is not None and it.image_grid_thw is not None]
    if not with_images:
        return {}
    return {
        "pixel_values": torch.cat([it.pixel_values for it in with_images]),
        "image_grid_thw": torch.cat([it.image_grid_thw for it in with_images]),
    }


class PaddingCollator:
    """One sample per row, right-padded; the model sees a 2-D padding mask and our 3-D positions.

    Returns model inputs plus ``labels`` and ``seq_ids`` ((B, L) index of the sample in ``items``,
    -1 on padding) for per-sample losses.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        width = max(len(it) for it in items)
        width = -(-width // self.multiple) * self.multiple
        b = len(items)
        input_ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        mm = torch.zeros((b, width), dtype=torch.long)
        attention = torch.zeros((b, width), dtype=torch.long)
        positions = torch.ones((3, b, width), dtype=torch.long)
        seq_ids = torch.full((b, width), -1, dtype=torch.long)
        for r, it in enumerate(items):
            n = len(it)
            input_ids[r, :n], labels[r, :n], mm[r, :n] = it.input_ids, it.labels, it.mm_token_type_ids
            attention[r, :n] = 1
            positions[:, r, :n] = it.position_ids
            seq_ids[r, :n] = r
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "position_ids": positions,
            "mm_token_type_ids": mm,
            "labels": labels,
            "seq_ids": seq_ids,
        }
        batch.update(vision_inputs(items))
        return batch
