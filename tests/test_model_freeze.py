"""Stage freezing, LoRA and per-module learning rates train exactly the intended parameters."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tokenizer():
    from medmo.model import train_tokenizer

    return train_tokenizer(vocab_size=300)


@pytest.fixture()
def model(tokenizer):
    from medmo.model import build_model, tiny_config

    return build_model(tiny_config(tokenizer))


def _parts(names):
    """Coarse module of each trainable name, to compare against the recipe's intent."""
    out = set()
    for n in names:
        if ".visual.merger." in n:
            out.add("merger")
        elif ".visual.deepstack_merger_list." in n:
            out.add("deepstack")
        elif ".visual." in n:
            out.add("vision")
        elif ".language_model." in n or n.startswith("lm_head"):
            out.add("llm")
        else:
            out.add(n)
    return out


@pytest.mark.parametrize(
    ("stage", "train_vision", "expected"),
    [
        ("align", False, {"merger", "deepstack"}),
        ("sft", False, {"merger", "deepstack", "llm"}),
        ("sft", True, {"merger", "deepstack", "llm", "vision"}),
        ("rl", False, {"llm"}),
    ],
)
def test_stage_trains_exactly_its_modules(model, stage, train_vision, expected):
    from medmo.model import freeze_for_stage

    names = freeze_for_stage(model, stage, train_vision=train_vision)
    assert names == [n for n, p in model.named_parameters() if p.requires_grad]
    assert _parts(names) == expected
    all_names = {n for n, _ in model.named_parameters()}
    # Every parameter of a trained module trains (nothing silently left frozen).
    for n in all_names - set(names):
        assert _parts([n]) - expected, n


def test_align_gradients_only_reach_mergers(model, tokenizer):
    from PIL import Image

    from medmo.model import build_processor, freeze_for_stage

    freeze_for_stage(model, "align")
    processor = build_processor(tokenizer, min_pixels=64 * 64, max_pixels=64 * 64)
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    text = processor.apply_chat_template(conv, tokenize=False)
    batch = processor(text=[text], images=[Image.new("RGB", (64, 64), (200, 10, 10))], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_lora_on_language_model_only(model):
    from medmo.model import add_lora, count_parameters, freeze_for_stage

    base_llm = count_parameters(model)["llm"]["total"]
    peft_model = add_lora(model, r=4, alpha=8)
    rl = freeze_for_stage(peft_model, "rl")
    assert rl and all("lora_" in n and ".language_model." in n for n in rl)
    assert {n.split(".")[-4] for n in rl} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"}
    sft = freeze_for_stage(peft_model, "sft")
    assert _parts(set(sft) - set(rl)) == {"merger", "deepstack"}
    counts = count_parameters(peft_model)
    assert counts["llm"]["trainable"] == 0 and counts["llm"]["total"] == base_llm
    assert counts["lora"]["trainable"] == counts["lora"]["total"] > 0


def test_param_groups_assign_learning_rates_per_module(model):
    from medmo.model import freeze_for_stage, param_groups

    freeze_for_stage(model, "sft", train_vision=True)
    groups = param_groups(model, lr_vision=1e-6, lr_merger=1e-4, lr_llm=1e-5, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"vision", "vision_no_decay", "merger", "merger_no_decay", "llm", "llm_no_decay"}
    assert by_name["vision"]["lr"] == 1e-6 and by_name["merger"]["lr"] == 1e-4 and by_name["llm"]["lr"] == 1e-5
    assert by_name["llm"]["weight_decay"] == 0.1 and by_name["llm_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in by_name["merger_no_decay"]["params"])
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)
    torch.optim.AdamW(groups)  # accepted as-is
    freeze_for_stage(model, "align")
    assert {g["name"] for g in param_groups(model, 1, 2, 3)} == {"merger", "merger_no_decay"}


def test_unknown_stage_is_refused(model):
    from medmo.model import freeze_for_stage

    with pytest.raises(ValueError, match="align, sft, rl"):
        freeze_for_stage(model, "pretrain")


def test_saving_a_lora_model_merges_adapters(model, tokenizer, tmp_path):
    from medmo.model import add_lora, build_processor, load, save

    peft_model = add_lora(model, r=4, alpha=8)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero; make the adapters change the output
            torch.nn.init.normal_(p, std=0.5)
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    save(peft_model, build_processor(tokenizer), tmp_path, dtype="float32")
    assert any("lora_" in n for n, _ in peft_model.named_parameters()), "the live model keeps its adapters"
    loaded, _ = load(tmp_path)
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-4)
