"""The registry table: every dataset source's metadata, with its loader module imported on demand.

Layouts and quirks are those of the published files (see each module's docstring for the source of the
format); licences are as stated by the publisher where it was read — check before redistributing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class SourceInfo:
    """What a dataset source provides and where its files must be.

    Attributes:
        name: registry key, also the ``source`` field and id prefix of its records.
        tasks: record tasks it yields (:data:`medmo.records.TASKS`).
        modality: main imaging modality (``"other"`` for mixed or text-only sets).
        splits: canonical split names it can yield.
        layout: the expected local folder layout, as text.
        hub_id: Hugging Face dataset id, or None.
        licence: licence note, as stated by the publisher.
    """

    name: str
    tasks: tuple[str, ...]
    modality: str
    splits: tuple[str, ...]
    layout: str
    hub_id: str | None
    licence: str

    def module(self) -> ModuleType:
        return importlib.import_module(f"medmo.data.sources.{self.name}")

    @property
    def loader(self) -> Callable[..., Any]:
        """The module's ``load(root, split, ctx, **kw)`` (imports the module)."""
        return self.module().load

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tasks": list(self.tasks),
            "modality": self.modality,
            "splits": list(self.splits),
            "layout": self.layout,
            "hub_id": self.hub_id,
            "licence": self.licence,
        }


TVT = ("train", "validation", "test")
_S = SourceInfo
# Fields in order: name, tasks, modality, splits, layout, hub_id, licence.
_ALL = (
    _S(
        "vqa_rad",
        ("closed_vqa", "open_vqa"),
        "other",
        ("train", "test"),
        "MEVF split: <root>/[data_RAD/]{trainset,testset}.json + images/synpicNNNNN.jpg\n"
        "or OSF: <root>/VQA_RAD Dataset Public.json + 'VQA_RAD Image Folder/'",
        "flaviagiammarino/vqa-rad",
        "CC0-1.0 (HF card)",
    ),
    _S(
        "slake",
        ("closed_vqa", "open_vqa", "grounding"),
        "other",
        TVT,
        "<root>/[Slake1.0/]{train,validate,test}.json + imgs/xmlabN/{source.jpg,detection.json}",
        "BoKelvin/SLAKE",
        "not stated in the release; commonly cited CC BY 4.0 (verify)",
    ),
    _S(
        "pathvqa",
        ("closed_vqa", "open_vqa"),
        "pathology",
        TVT,
        "<root>/[pvqa/]qas/{train,val,test}/{train,val,test}_qa.pkl + images/{train,val,test}/<image>.jpg",
        "flaviagiammarino/path-vqa",
        "repo LICENSE; images (c) textbook publishers / PEIR",
    ),
    _S(
        "pmc_vqa",
        ("mcq",),
        "other",
        ("train", "test", "test_clean"),
        "<root>/{train,test,test_clean}.csv (v2: *_2.csv, version=2) + images/<Figure_path>",
        "xmcmic/PMC-VQA",
        "not stated on the card",
    ),
    _S(
        "omnimedvqa",
        ("mcq",),
        "other",
        ("test",),
        "<root>/QA_information/{Open-access,Restricted-access}/<Dataset>.json + Images/<Dataset>/...",
        "foreverbeliever/OmniMedVQA",
        "per source dataset (card)",
    ),
    _S(
        "mmmu_med",
        ("mcq", "open_vqa"),
        "other",
        ("dev", "validation", "test"),
        "<root>/<Subject>/{dev,validation,test}-00000-of-00001.parquet (HF snapshot of MMMU/MMMU)",
        "MMMU/MMMU",
        "Apache-2.0",
    ),
    _S(
        "medxpertqa",
        ("mcq",),
        "other",
        ("test", "dev"),
        "<root>/**/medxpertqa_{mm,text}_input.jsonl (GitHub eval) or <root>/{MM,Text}/*.jsonl;\n"
        "MM images in <root>/images/",
        "TsinghuaC3I/MedXpertQA",
        "MIT",
    ),
    _S(
        "medqa",
        ("mcq",),
        "other",
        TVT,
        "<root>/[data_clean/questions/US/]{train,dev,test}.jsonl (5 options) and "
        "4_options/phrases_no_exclude_{train,dev,test}.jsonl (4 options)",
        "GBaker/MedQA-USMLE-4-options",
        "not checked",
    ),
    _S(
        "pubmedqa",
        ("mcq",),
        "other",
        ("train", "test"),
        "<root>/[data/]ori_pqal.json + test_ground_truth.json (the 500 test PMIDs)",
        "qiaojin/PubMedQA",
        "MIT",
    ),
    _S(
        "medmcqa",
        ("mcq",),
        "other",
        TVT,
        "<root>/{train,dev,test}.json (GitHub JSON Lines, cop 1-4)\n"
        "or <root>/data/{train,validation,test}-*.parquet (HF, cop 0-3)",
        "openlifescienceai/medmcqa",
        "MIT (GitHub) / Apache-2.0 (HF card)",
    ),
    _S(
        "mmlu_med",
        ("mcq",),
        "other",
        ("dev", "validation", "test"),
        "<root>/{dev,val,test}/<subject>_{dev,val,test}.csv (hendrycks CSV, no header) or <root>/*.jsonl "
        "(question, answer_a..d, correct_answer, topic)",
        "cais/mmlu",
        "MIT",
    ),
    _S(
        "medbullets",
        ("mcq",),
        "other",
        ("test",),
        "<root>/[medbullets/]medbullets_op{4,5}.{csv,json} (JSON is pandas column-oriented)",
        None,
        "none stated (research use)",
    ),
    _S(
        "supergpqa",
        ("mcq",),
        "other",
        ("test",),
        "<root>/[data/]SuperGPQA-all.jsonl",
        "m-a-p/SuperGPQA",
        "ODC-BY (GitHub) vs MIT (HF card)",
    ),
    _S(
        "iu_xray",
        ("report",),
        "x-ray",
        ("train", "validation", "test", "all"),
        "R2Gen: <root>/annotation.json + images/<id>/{0,1}.png\n"
        "or original: <root>/ecgen-radiology/<n>.xml + NLMCXR_png/<parentImage id>.png",
        None,
        "CC BY-NC-ND 4.0",
    ),
    _S(
        "mimic_cxr",
        ("report",),
        "x-ray",
        TVT,
        "<root>/mimic-cxr-2.0.0-split.csv[.gz] + files/pXX/pSUBJECT/sSTUDY.txt\n"
        "+ files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg (optional mimic-cxr-2.0.0-metadata.csv[.gz] for views)\n"
        "or R2Gen: <root>/annotation.json + images/<image_path>",
        None,
        "PhysioNet Credentialed Health Data License",
    ),
    _S(
        "chexpert_plus",
        ("report",),
        "x-ray",
        ("train", "validation"),
        "<root>/df_chexpert_plus_240401.csv + <path_to_image> files (train/patientN/studyN/viewN_frontal.jpg)",
        None,
        "Stanford AIMI research use agreement",
    ),
    _S(
        "medtrinity_25m",
        ("caption",),
        "other",
        ("train",),
        "<root>/**/*.parquet (HF snapshot: image, id, caption)\n"
        "or <root>/*.{jsonl,csv} (id, caption, image|file_name) + images/",
        "UCSC-VLAA/MedTrinity-25M",
        "not seen (gated HF)",
    ),
    _S(
        "nih_chestxray14",
        ("grounding",),
        "x-ray",
        ("train", "test", "all"),
        "<root>/BBox_List_2017.csv + images/<Image Index>.png (or images_NNN/images/); optional "
        "train_val_list.txt, test_list.txt",
        None,
        "NIH public release (cite Wang et al. CVPR 2017)",
    ),
    _S(
        "deeplesion",
        ("grounding",),
        "ct",
        TVT,
        "<root>/DL_info.csv + Images_png/PPPPPP_SS_RR/KKK.png (16-bit, HU + 32768)",
        None,
        "NIH data-use terms",
    ),
    _S(
        "medsg_bench",
        ("grounding",),
        "other",
        ("train", "test"),
        "<root>/**/*.json: benchmark arrays {task, images, question, answer[, size]} or MedSG-188K "
        "{id, task, images, conversations}; image paths relative to <root>",
        "MedSG-Bench/MedSG-Bench",
        "CC-BY-4.0",
    ),
)

SOURCES: dict[str, SourceInfo] = {s.name: s for s in _ALL}
ALIASES = {
    "vqarad": "vqa_rad",
    "path_vqa": "pathvqa",
    "pmcvqa": "pmc_vqa",
    "mmmu": "mmmu_med",
    "mmlu_medical": "mmlu_med",
    "mmlu": "mmlu_med",
    "medqa_usmle": "medqa",
    "iu_x_ray": "iu_xray",
    "nih_chestxray14_bbox": "nih_chestxray14",
    "chestxray14": "nih_chestxray14",
    "mimic": "mimic_cxr",
    "medtrinity": "medtrinity_25m",
    "medsg": "medsg_bench",
}
