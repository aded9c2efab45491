"""The catalogue kept as data: the built-in models.toml, an operator's MODELS_FILE over it, and its mistakes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from services.config import load_settings
from services.errors import ConfigError
from services.rules.catalogue import Request, built_in
from services.rules.catalogue_file import CatalogueError, load_catalogue
from services.rules.model_spec import IntRange, OneOf

BFL = "black-forest-labs"
TEN = [
    "flux-schnell", "flux-dev", "flux-pro", "flux-1.1-pro", "flux-1.1-pro-ultra", "flux-kontext-pro",
    "flux-kontext-max", "flux-2-pro", "flux-2-flex", "flux-2-dev",
]  # fmt: skip


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.local.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_built_in_catalogue_has_the_ten_models_cometapi_serves():
    models = load_catalogue()
    assert [model_id.split("/")[1] for model_id in models] == TEN
    for spec in models.values():
        assert spec.price is not None, spec.id
        assert spec.typical_seconds[0] < spec.typical_seconds[1]
    pro, flex, dev = (models[f"{BFL}/flux-2-{tier}"] for tier in ("pro", "flex", "dev"))
    assert (pro.max_images, flex.max_images, dev.max_images) == (8, 10, 4)
    assert all(spec.image_param == "input_images" and spec.image_list for spec in (pro, flex, dev))
    assert pro.params["safety_tolerance"] == IntRange(1, 5, 2)
    assert "safety_tolerance" not in dev.params and "resolution" not in dev.params
    assert isinstance(pro.params["resolution"], OneOf)
    assert set(pro.choices("resolution")) == {"match_input_image", "0.5 MP", "1 MP", "2 MP", "4 MP"}
    assert flex.params["steps"] == IntRange(1, 50, 30)
    assert flex.params["prompt_upsampling"].default is True
    # FLUX.2 runs 5-40 s; the poll schedule's priors say so
    assert all(5 <= spec.typical_seconds[1] <= 40 for spec in (pro, flex, dev))
    assert models[f"{BFL}/flux-pro"].image_param is None  # its image_prompt is no reference image
    assert models[f"{BFL}/flux-kontext-max"].image_param == "input_image"


def test_an_operator_file_overrides_values_adds_models_and_hides_some(tmp_path):
    path = write(
        tmp_path,
        """
        [models."black-forest-labs/flux-2-pro"]
        typical_seconds = [9, 50]
        price = { per_run = 0.01, per_output_mp = 0.01 }

        [models."black-forest-labs/flux-2-pro".params]
        safety_tolerance = { type = "int", min = 1, max = 4, default = 3 }

        [models."black-forest-labs/flux-2-max"]
        extends = "black-forest-labs/flux-2-pro"
        label = "FLUX.2 max"
        remove_params = ["resolution"]

        [models."black-forest-labs/flux-schnell"]
        enabled = false
        """,
    )
    models = load_catalogue(path)
    pro = models[f"{BFL}/flux-2-pro"]
    assert pro.typical_seconds == (9.0, 50.0)
    assert pro.params["safety_tolerance"] == IntRange(1, 4, 3)
    assert pro.max_images == 8  # what the override did not name stays as built in
    assert pro.price is not None and pro.price.rates.per_input_mp == 0  # a price is replaced whole
    new = models[f"{BFL}/flux-2-max"]
    assert (new.label, new.max_images, new.typical_seconds) == ("FLUX.2 max", 8, (9.0, 50.0))
    assert "resolution" not in new.params
    assert f"{BFL}/flux-schnell" not in models


def test_models_file_is_read_at_start_up_and_used(tmp_path):
    path = write(
        tmp_path,
        """
        [models."black-forest-labs/flux-2-pro".params]
        safety_tolerance = { type = "int", min = 1, max = 4, default = 3 }
        """,
    )
    settings = load_settings({"COMETAPI_KEY": "k", "MODELS_FILE": str(path)}, require_discord=False)
    assert settings.models_file == str(path)
    _, sent = settings.catalogue.build_input("flux-2-pro", Request("a cat"))
    assert sent["safety_tolerance"] == 3
    with pytest.raises(Exception, match="between 1 and 4"):
        settings.catalogue.build_input("flux-2-pro", Request("a cat", {"safety_tolerance": 5}))
    assert settings.policy().catalogue is settings.catalogue  # what admission and pricing are given
    # settings without the file have the built-in catalogue, untouched by the file read before
    built = load_settings({"COMETAPI_KEY": "k"}, require_discord=False).catalogue
    assert built is built_in()
    assert built[f"{BFL}/flux-2-pro"].params["safety_tolerance"] == IntRange(1, 5, 2)


def test_default_model_may_name_a_model_of_the_file(tmp_path):
    path = write(
        tmp_path,
        """
        [models."black-forest-labs/flux-2-max"]
        extends = "black-forest-labs/flux-2-pro"
        label = "FLUX.2 max"
        """,
    )
    env = {"COMETAPI_KEY": "k", "MODELS_FILE": str(path), "DEFAULT_MODEL": "flux-2-max"}
    assert load_settings(env, require_discord=False).default_model == "flux-2-max"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[models."black-forest-labs/flux-2-pro"]\nmax_image = 9\n',
            ['models."black-forest-labs/flux-2-pro"', "unknown key `max_image`"],
        ),
        (
            '[models."black-forest-labs/flux-2-pro".params]\nseed = { type = "int", min = 5, max = 1 }\n',
            [".params.seed.max", "at least 5"],
        ),
        (
            '[models."black-forest-labs/flux-2-pro".params]\nresolution = { type = "choice", values = ["1 MP"], '
            'default = "8 MP" }\n',
            [".params.resolution.default", "'8 MP' is not one of its values"],
        ),
        (
            '[models."black-forest-labs/flux-2-pro".params]\nwidth = { type = "int", min = 256, max = 2048, '
            'only_with = "aspect_ratio=square" }\n',
            ["only_with", "no aspect_ratio choice `square`"],
        ),
        ('[models."black-forest-labs/flux-2-pro"]\nprice = { per_run = -1 }\n', ["per_run", "cannot be negative"]),
        ('[models."black-forest-labs/flux-2-pro"]\ntypical_seconds = [40, 5]\n', ["typical_seconds", "0 < low < high"]),
        (
            '[models."black-forest-labs/flux-2-pro"]\nimages = { param = "input_images", max = 8 }\n',
            ["images.max", "takes at most 1"],
        ),
        ('[models."someone/flux-2-pro"]\nextends = "black-forest-labs/flux-2-pro"\n', ["share the short name"]),
        ('[models."someone/new"]\nextends = "someone/old"\n', ["extends `someone/old`", "not a model defined"]),
        ('[models."someone/new"]\nlabel = "New"\n', ['models."someone/new"', "`output` is missing"]),
        ('[models."../x"]\nlabel = "x"\n', ["a model id is owner/name"]),
        ("[models.flux\nlabel = 1\n", ["not valid TOML"]),
        ('[model."black-forest-labs/flux-2-pro"]\n', ["unknown top-level key `model`"]),
    ],
)
def test_a_mistake_is_one_line_naming_the_file_and_the_place(tmp_path, text, fragments):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_missing_file_or_a_folder_is_a_config_error_naming_the_setting(tmp_path):
    for where, fragment in ((tmp_path / "nope.toml", "no such file"), (tmp_path, "is a folder")):
        with pytest.raises(ConfigError) as caught:
            load_settings({"COMETAPI_KEY": "k", "MODELS_FILE": str(where)}, require_discord=False)
        assert str(caught.value).startswith(f"MODELS_FILE: {where}: ")
        assert fragment in str(caught.value)
