"""A trivial baseline backend: answers without looking at the image.

It gives the most frequent training answer of each task and, for grounding, the mean training box, so a
benchmark's "chance" row is scored by exactly the same pipeline and rules as a trained model
(``medmo eval run TRAIN.jsonl --backend baseline --bench nano``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from medmo.boxes import to_grid
from medmo.data.io import read_records
from medmo.eval.backends.base import Request
from medmo.prompts import format_box_answer


class BaselineBackend:
    """An evaluation backend that ignores the image: majority answers and the mean training box.

    Args:
        answers: majority training answer per task.
        mean_box: mean training box on the 0-1000 grid.
        source: where the statistics come from (named in results).
    """

    name = "baseline"

    def __init__(self, answers: dict[str, str], mean_box: list[int], source: str = "") -> None:
        self.answers, self.mean_box, self.source = answers, mean_box, source

    @classmethod
    def from_records(cls, train_path: str | Path) -> BaselineBackend:
        """Majority answers and the mean box of the records in ``train_path`` (a file or folder)."""
        counts: dict[str, Counter] = {}
        boxes: list[list[int]] = []
        for s in read_records(train_path):
            if s.task == "grounding":
                boxes += [to_grid(b.box, s.images[b.image].width, s.images[b.image].height) for b in s.boxes]
            else:
                counts.setdefault(s.task, Counter())[s.answer] += 1
        if not counts and not boxes:
            raise ValueError(f"no training records in {train_path}; the baseline needs a records file or folder")
        answers = {task: c.most_common(1)[0][0] for task, c in counts.items()}
        mean = [round(sum(b[i] for b in boxes) / max(1, len(boxes))) for i in range(4)]
        return cls(answers, mean, str(train_path))

    def info(self) -> dict[str, Any]:
        return {"kind": "baseline", "name": self.name, "records": self.source,
                "rule": "majority training answer per task; mean box"}  # fmt: skip

    def generate(self, requests: list[Request], *, batch_size: int = 8) -> list[str]:
        return [format_box_answer("finding", [self.mean_box]) if r.task == "grounding" else self.answers.get(r.task, "")
                for r in requests]  # fmt: skip
