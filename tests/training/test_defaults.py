"""`make models` can reproduce what is committed: every model in models/ has a recipe in
training.defaults, and the recipe is the configuration its card says it was trained with."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from training.tasks import TASKS

MODELS = Path(__file__).resolve().parents[2] / "models"
RECIPES = {name: cfg for task in TASKS.values() for name, cfg in task.default_models().items()}

# settings that may differ between a recipe and its card, and why
ALLOWED = {
    "out", "device",  # where a run writes and runs
    "workers", "compare", "lk",  # nowcast: processes generating data, what is verified beside the model
    "steps",  # denoisers: the committed runs planned 200,000 steps on a time budget; make models trains 5,000
    "max_disp",  # read by the Lagrangian nowcaster only (the ConvLSTM's card carries the default of its day)
}  # fmt: skip
# a committed model whose last run was a fine-tune from the committed weights (its card's initialised_from says
# so: the gray denoiser's lr 1e-4 phase, the colour denoiser's cosine anneal, the cell U-Net's 12 epochs at 5e-4)
# may differ from its recipe in that phase's optimisation settings; the recipe keeps what a fresh run needs
FINE_TUNE = {"lr", "schedule", "epochs"}


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.iterdir() if (p / "card.json").exists()))
def test_committed_model_has_its_recipe(name: str) -> None:
    assert name in RECIPES, f"models/{name} has no recipe in training.defaults: make models would not rebuild it"
    trained = json.loads((MODELS / name / "card.json").read_text())["hyperparameters"]
    recipe = json.loads(json.dumps(asdict(RECIPES[name])))  # as a card holds it: tuples are lists
    allowed = ALLOWED | (FINE_TUNE if "initialised_from" in trained else set())
    differ = {k: (v, trained[k]) for k, v in recipe.items() if k in trained and trained[k] != v and k not in allowed}
    assert not differ, f"recipe vs card (recipe, card): {differ}"
