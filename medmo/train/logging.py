"""Where a training run reports: a tqdm bar, ``metrics.jsonl``, TensorBoard (default) and wandb (opt-in).

``metrics.jsonl`` holds one JSON object per logged step (``step``, ``loss``, ``lr``, ``tokens_per_s``,
... and ``eval_*`` keys on eval steps); the speedrun report reads loss curves from it. On resume,
lines beyond the checkpoint's step are dropped so the file is the curve of one continuous run.
Only the main process writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medmo.train.recipe import LoggingConfig

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a run folder or the file itself)."""
    path = Path(path)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_after(path: Path, step: int) -> None:
    if path.is_file():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


class RunLogger:
    """Fan metrics out to the progress bar, ``metrics.jsonl``, TensorBoard and wandb.

    Args:
        output_dir: the run folder.
        config: the recipe's ``logging`` section.
        total_steps: optimizer steps of the run (the bar's total, for its ETA).
        start_step: first step of this process's life (non-zero when resuming).
        enabled: false on non-main processes.
        run_config: the resolved recipe, stored as wandb config / TensorBoard text.
    """

    def __init__(
        self,
        output_dir: str | Path,
        config: LoggingConfig,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        run_config: dict[str, Any] | None = None,
    ):
        self.enabled = enabled
        self.config = config
        self.out = Path(output_dir)
        self.bar = self.tb = self.wandb = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.out / METRICS_FILE, start_step)
        self.file = open(self.out / METRICS_FILE, "a", encoding="utf-8")
        if config.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        if config.tensorboard:
            self.tb = _tensorboard(self.out / "tensorboard")
            if run_config:
                self.tb.add_text("recipe", f"```\n{json.dumps(run_config, indent=1)}\n```")
        if config.wandb:
            self.wandb = _wandb(config, self.out, run_config)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` for ``step`` everywhere (numbers only go to TensorBoard / wandb)."""
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        numbers = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if self.tb is not None:
            for key, value in numbers.items():
                self.tb.add_scalar(key.replace("eval_", "eval/"), value, step)
        if self.wandb is not None:
            self.wandb.log(numbers, step=step)
        if self.bar is not None and "loss" in record:
            shown = {"loss": f"{record['loss']:.4f}", "lr": f"{record.get('lr', 0):.2e}"}
            if "tokens_per_s" in record:
                shown["tok/s"] = f"{record['tokens_per_s']:.0f}"
            self.bar.set_postfix(shown, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoard logging needs the `tensorboard` package: `pip install tensorboard`, "
            "or set logging.tensorboard=false"
        ) from e
    return SummaryWriter(log_dir=str(folder))


def _wandb(config: LoggingConfig, folder: Path, run_config: dict[str, Any] | None) -> Any:
    try:
        import wandb
    except ImportError as e:
        raise ImportError("logging.wandb=true needs the `wandb` package: `pip install wandb` (and `wandb login`)") from e
    wandb.init(project=config.wandb_project, name=config.run_name, dir=str(folder), config=run_config)
    return wandb
