"""What MedMO changes in TRL's ``GRPOTrainer``: checkpoints, the prompt order per epoch, and seeded sampling.

Three things, each overriding one TRL / transformers method, each checked against the installed version
(:func:`check_trainer`) so a changed TRL fails at start with a clear message instead of training wrongly:

* **Checkpoints** (``Trainer._save_checkpoint``): ``checkpoints/checkpoint-N/`` is a standard Qwen3-VL folder
  in the recipe's ``save_dtype`` (:func:`medmo.model.layout.save`), like the supervised checkpoints
  (:mod:`medmo.train.checkpoint`); what resuming needs (the float32 master weights, optimizer, scheduler,
  RNG states and TRL's ``trainer_state.json`` with the data position) is TRL's own checkpoint, moved into
  ``checkpoint-N/training_state/``. ``save_total_limit`` prunes whole ``checkpoint-N`` folders.
* **Prompt order** (``GRPOTrainer._get_train_sampler``): TRL's ``RepeatSampler`` draws each epoch's
  permutation from one generator that advances per epoch, so a run resumed at an epoch boundary restarts it
  and replays epoch 0's order. Here epoch ``e``'s order is drawn from ``seed + e`` (epoch 0 is TRL's), set
  through ``set_epoch``, which the trainer calls at every epoch start, fresh or resumed.
* **Seeded sampling** (``GRPOTrainer._generate_single_turn``, transformers generation only): each
  completion's tokens are drawn with the Gumbel-max trick from noise seeded by (seed, optimizer step, the
  row's index in the global batch), after the same temperature / top-k / top-p / min-p warping transformers
  applies. A sample from the same distribution, but one that depends on nothing else: not on how the batch is
  split over processes, nor on RNG state a resume restores. N processes then sample exactly what one
  process sampling the whole global batch samples, and a resumed run samples what the uninterrupted one did.
"""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from medmo.model.layout import save
from medmo.train.checkpoint import STATE_DIR
from medmo.train.distributed import full_state_dict

log = logging.getLogger(__name__)

# (class, method, the parameters our override relies on) for every TRL / transformers method replaced here
OVERRIDDEN = (
    ("transformers.Trainer", "_save_checkpoint", ("model", "trial")),
    ("trl.GRPOTrainer", "_get_train_sampler", ("dataset",)),
    ("trl.GRPOTrainer", "_generate_single_turn", ("prompt_ids", "images", "multimodal_fields", "num_generations")),
)
SEEDED_WARPERS = ("temperature", "top_k", "top_p", "min_p")
UNSEEDED_WARPERS = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h")  # sampled by TRL as is


def check_trainer() -> None:
    """Fail loudly when the installed TRL / transformers no longer has a method MedMO overrides.

    Raises:
        RuntimeError: which method changed, and the versions this was written against.
    """
    import importlib

    import trl.trainer.utils as trl_utils

    for owner, method, params in OVERRIDDEN:
        module, name = owner.rsplit(".", 1)
        fn = getattr(getattr(importlib.import_module(module), name), method, None)
        got = list(inspect.signature(fn).parameters)[1:] if fn is not None else None
        if got is None or list(params) != got[: len(params)]:
            raise RuntimeError(f"the installed {module} changed {owner}.{method} (MedMO overrides it, written for "
                               f"trl 1.16 / transformers 5.24: parameters {list(params)}, found {got}); install "
                               "those versions (constraints-cpu.txt) or update medmo/train/grpo_trainer.py")
    sampler = getattr(trl_utils, "RepeatSampler", None)
    if sampler is None or not {"mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"} <= set(
            inspect.signature(sampler).parameters):  # fmt: skip
        raise RuntimeError("the installed trl changed trl.trainer.utils.RepeatSampler, whose order MedMO makes "
                           "resumable; install trl 1.16 or update medmo/train/grpo_trainer.py")


# ------------------------------------------------------------------------------------ prompt order


def epoch_sampler(base: Any) -> Any:
    """TRL's ``RepeatSampler`` ``base`` with each epoch's order drawn from ``seed + epoch`` (see module doc)."""
    from trl.trainer.utils import RepeatSampler

    class EpochRepeatSampler(RepeatSampler):
        epoch: int | None = None

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + epoch)

        def __iter__(self):
            if self.shuffle and self.epoch is None:
                raise RuntimeError("the trainer iterated the GRPO prompts without calling set_epoch; the installed "
                                   "transformers changed how epochs start (MedMO was written for 5.24)")
            return super().__iter__()

    if not isinstance(base, RepeatSampler):
        raise RuntimeError(f"TRL's GRPO sampler is a {type(base).__name__}, not the RepeatSampler MedMO makes "
                           "resumable; install trl 1.16 or update medmo/train/grpo_trainer.py")
    return EpochRepeatSampler(base.data_source, mini_repeat_count=base.mini_repeat_count, batch_size=base.batch_size,
                              repeat_count=base.repeat_count, shuffle=base.shuffle, seed=base.seed)  # fmt: skip


# --------------------------------------------------------------------------------- seeded sampling


def row_seed(seed: int, step: int, row: int) -> int:
    """The noise seed of one completion: the run's seed, the optimizer step it is sampled at, its global row."""
    return (seed * 1_000_003 + step) * 1_000_033 + row


class GumbelSampling:
    """A transformers ``LogitsProcessor`` that draws the next token itself and hands ``generate`` a one-hot.

    It warps the scores as transformers' sampling does (temperature, top-k, top-p, min-p, in that order,
    ``generation/utils.py:_get_logits_processor``), adds Gumbel noise from one generator per row, and keeps
    only the argmax: an exact sample of the warped distribution (Gumbel 1954; Maddison et al. 2014). The
    warpers transformers applies after it keep a one-hot unchanged, and its multinomial then picks that token.
    """

    def __init__(self, generation_config: Any, seeds: list[int], device: Any):
        from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        g = generation_config
        self.warpers = []
        if g.temperature is not None and g.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(g.temperature))
        if g.top_k is not None and g.top_k != 0:
            self.warpers.append(TopKLogitsWarper(top_k=g.top_k))
        if g.top_p is not None and g.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=g.top_p))
        if g.min_p is not None:
            self.warpers.append(MinPLogitsWarper(min_p=g.min_p))
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        choice = (scores.float() + gumbel).argmax(dim=-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, choice, 0.0)


def seedable(generation_config: Any) -> bool:
    """Whether :class:`GumbelSampling` reproduces this sampling exactly (else TRL samples as it does)."""
    g = generation_config
    unsupported = [k for k in UNSEEDED_WARPERS if getattr(g, k, None) not in (None, 1.0, 0.0)]
    return bool(g.do_sample) and (g.num_beams or 1) == 1 and not unsupported


def seeded_generate(generate: Any, seeds_of: Any, *args: Any, **kwargs: Any) -> Any:
    """``generate`` with :class:`GumbelSampling` for the rows it is given (``seeds_of(n_rows)``)."""
    config = kwargs.get("generation_config")
    ids = kwargs.get("input_ids", args[0] if args else None)
    if config is None or ids is None or not seedable(config) or kwargs.get("logits_processor"):
        return generate(*args, **kwargs)
    from transformers import LogitsProcessorList

    sampler = GumbelSampling(config, seeds_of(ids.size(0)), ids.device)
    return generate(*args, logits_processor=LogitsProcessorList([sampler]), **kwargs)


# ----------------------------------------------------------------------------------------- trainer


class MedMOTrainerMixin:
    """Used as ``class Trainer(MedMOTrainerMixin, [SharedPrefixMixin,] GRPOTrainer)``; the processor and the
    save dtype are set as ``medmo_processor`` / ``medmo_save_dtype`` after construction."""

    medmo_processor: Any = None
    medmo_save_dtype: str = "bfloat16"

    def _get_train_sampler(self, dataset=None):
        return epoch_sampler(super()._get_train_sampler(dataset))

    def _generate_single_turn(self, *args, **kwargs):
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False):
            return super()._generate_single_turn(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        own = vars(model).get("generate")
        step, rank, seed = self.state.global_step, self.accelerator.process_index, self.args.seed

        def seeds_of(rows: int) -> list[int]:
            # TRL gives process i the rows [i * rows, (i + 1) * rows) of the global generation batch
            return [row_seed(seed, step, rank * rows + r) for r in range(rows)]

        model.generate = functools.partial(seeded_generate, model.generate, seeds_of)
        try:
            return super()._generate_single_turn(*args, **kwargs)
        finally:
            if own is None:
                del model.generate
            else:
                model.generate = own

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        weights = full_state_dict(self.accelerator, self.model_wrapped)  # every process takes part
        if self.args.should_save:
            if not (folder / "trainer_state.json").is_file():
                raise RuntimeError(f"TRL wrote no checkpoint at {folder}; the installed transformers changed "
                                   "Trainer._save_checkpoint (MedMO was written for 5.24)")
            to_state(folder)
            save(self.accelerator.unwrap_model(self.model), self.medmo_processor, folder,
                 dtype=self.medmo_save_dtype, state_dict=weights)  # fmt: skip
        self.accelerator.wait_for_everyone()


def to_state(folder: Path) -> Path:
    """Move a TRL checkpoint's files into ``folder/training_state`` (the standard folder is written beside)."""
    state = folder / STATE_DIR
    state.mkdir(exist_ok=True)
    for entry in list(folder.iterdir()):
        if entry != state:
            shutil.move(str(entry), str(state / entry.name))
    return state


def resume_dir(checkpoint: str | Path) -> str:
    """What TRL resumes from: a MedMO checkpoint's ``training_state``, or an older plain TRL checkpoint."""
    state = Path(checkpoint) / STATE_DIR
    return str(state if (state / "trainer_state.json").is_file() else checkpoint)
