from pathlib import Path

import pytest

from practicum.config import RunConfig, field_help, load_config, parse_overrides, to_yaml
from practicum.errors import UserError

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(recipe):
    cfg = load_config(recipe)
    assert isinstance(cfg, RunConfig)
    assert load_config(cfg.model_dump(mode="json")) == cfg  # round-trips


def test_there_are_shipped_recipes():
    assert (CONFIGS / "quickstart.yaml").is_file()


def test_overrides_set_nested_fields_and_parse_types():
    cfg = load_config(None, parse_overrides(["--train.lr", "3e-4", "--data.split.seed=7",
                                             "--model.type", "rnn", "--model.cell", "gru"]))
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.data.split.seed == 7
    assert cfg.model.type == "rnn" and cfg.model.cell == "gru"


def test_switching_model_type_drops_fields_of_the_old_model(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  type: lenet\n  channels: [8, 16]\n")
    cfg = load_config(recipe, ["model.type=mlp"])
    assert cfg.model.type == "mlp"


def test_unknown_field_names_path_line_and_suggestion(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("data:\n  path: builtin:digits\ntrain:\n  epochs: 3\n  lrr: 0.1\n")
    with pytest.raises(UserError) as err:
        load_config(recipe)
    msg = str(err.value)
    assert f"{recipe}:5" in msg and "train.lrr" in msg and "did you mean 'train.lr'" in msg


@pytest.mark.parametrize(
    "override, expect",
    [
        ("train.epochs=zero", "field 'train.epochs' expected int >= 1"),
        ("train.precision=fp8", "expected one of fp32, bf16"),
        ("model.type=gpt9", "model.type must be one of"),
        ("data.split.val_fraction=2", "data.split.val_fraction"),
        ("train.batch_size=-4", "expected int >= 1"),
    ],
)
def test_ill_typed_fields_name_the_expected_type(override, expect):
    with pytest.raises(UserError, match=expect.replace("(", r"\(")):
        load_config(None, [override])


def test_model_field_errors_use_the_model_schema():
    with pytest.raises(UserError, match="model.cell' expected one of rnn, lstm, gru"):
        load_config(None, ["model.type=rnn", "model.cell=transformer"])


def test_bad_yaml_and_missing_recipe(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_override_errors_name_the_override_not_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  path: builtin:iris\ntrain:\n  epochs: 3\n  lr: 0.1\n")
    cases = [
        (["train.lrr=3e-4"], "override train.lrr=3e-4: unknown field 'train.lrr'; did you mean 'train.lr'?"),
        (parse_overrides(["--train.lrr", "3e-4"]), "--train.lrr: unknown field 'train.lrr'; did you mean"),
        (parse_overrides(["--train.lr", "fast"]), "--train.lr: field 'train.lr' expected float > 0.0, got 'fast'"),
        (parse_overrides(["--train.lr=fast"]), "--train.lr: field 'train.lr' expected float"),
        (parse_overrides(["--train.betas", "[0.9, x]"]), "--train.betas: field 'train.betas.1'"),
        (parse_overrides(["--model.type", "gpt9"]), "--model.type: model.type must be one of"),
        (parse_overrides(["--trian.lr", "1"]), "--trian.lr: unknown field 'trian'; did you mean 'train'?"),
        (parse_overrides(["--train.lr.peak", "1"]), "--train.lr.peak: 'lr' is a value, not a section"),
    ]
    for overrides, expected in cases:
        with pytest.raises(UserError) as err:
            load_config(recipe, overrides)
        assert str(err.value).startswith(expected), (overrides, str(err.value))
        assert str(recipe) not in str(err.value)


def test_recipe_errors_keep_the_file_and_line_beside_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 3\n  lrr: 0.1\n")
    with pytest.raises(UserError) as err:
        load_config(recipe, parse_overrides(["--train.lr", "0.5", "--train.epochs", "4"]))
    assert str(err.value).startswith(f"{recipe}:3: unknown field 'train.lrr'")


def test_override_syntax_errors():
    with pytest.raises(UserError, match="needs a value"):
        parse_overrides(["--train.lr"])
    with pytest.raises(UserError, match="unexpected argument"):
        parse_overrides(["train.lr"])


def test_yaml_dump_and_field_help_cover_every_section():
    text = to_yaml(RunConfig())
    for section in ("data:", "model:", "train:", "task:", "out_dir:"):
        assert section in text
    paths = {row[0] for row in field_help()}
    assert {"train.lr", "data.split.seed", "model[rnn].cell", "model[transformer].n_heads"} <= paths
    assert all(row[2] for row in field_help()), "every field has help text"
