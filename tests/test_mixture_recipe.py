"""The shipped data mixture recipe parses and names only registered sources."""

from __future__ import annotations

from medmo import recipes
from medmo.data.mixture import load_config
from medmo.data.sources import SOURCES

RECIPE = recipes.path("data/mixture")


def test_shipped_mixture_recipe_is_valid():
    assert RECIPE.read_text().startswith("# medmo data build")
    cfg = load_config(RECIPE)
    names = [s.name for s in cfg.sources if s.name]
    assert names and all(n in SOURCES for n in names), names
    assert cfg.decontaminate_against
