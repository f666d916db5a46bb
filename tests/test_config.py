import dataclasses

import pytest

from digit_keras.cli import main
from digit_keras.config import (
    CONFIG_DIR,
    TrainConfig,
    apply_overrides,
    config_file,
    default_config_path,
    default_space_path,
    from_dict,
    load_config,
    parse_assignment,
    shipped_recipes,
    to_toml,
)
from digit_keras.errors import ConfigError


def test_shipped_basic_config_loads():
    config = load_config(default_config_path("basic"))
    assert config.arch == "basic" and config.model["width"] == 32
    assert config.augment.enabled


def test_toml_round_trip(tmp_path):
    config = apply_overrides(
        load_config(default_config_path("basic")),
        {"optimizer.learning_rate": 0.01, "model.dropout": 0.25, "data.limit": 100},
        "test",
    )
    (tmp_path / "c.toml").write_text(to_toml(config))
    assert load_config(tmp_path / "c.toml") == config


def test_overrides_are_typed_and_validated():
    config = apply_overrides(TrainConfig(), dict([parse_assignment("epochs=3")]), "cli")
    assert config.epochs == 3
    assert parse_assignment("optimizer.schedule=constant") == ("optimizer.schedule", "constant")
    assert parse_assignment("augment.zoom=0") == ("augment.zoom", 0)
    assert apply_overrides(TrainConfig(), {"augment.zoom": 0}, "cli").augment.zoom == 0.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epoch": 3}, r"unknown key 'epoch' \(known: arch, augment, backup_minutes, batch_size"),
        ({"optimizer": {"lr": 1}}, r"unknown key 'optimizer.lr' \(known: optimizer.decay_rate"),
        ({"epochs": "ten"}, "'epochs': Input should be a valid integer; got 'ten'"),
        ({"epochs": 1.5}, "'epochs': Input should be a valid integer; got 1.5"),
        ({"epochs": True}, "'epochs': Input should be a valid integer; got True"),
        ({"deterministic": 1}, "'deterministic': Input should be a valid boolean; got 1"),
        ({"augment": {"zoom": "0.1"}}, "'augment.zoom': Input should be a valid number; got '0.1'"),
        (
            {"strategy": "tpu"},
            "'strategy': Input should be 'auto', 'default', 'mirrored' or 'multi-worker'; "
            "got 'tpu'",
        ),
        ({"data": {"val_fraction": 1.0}}, "'data.val_fraction': Input should be less than 1"),
        ({"batch_size": 0}, "'batch_size': Input should be greater than 0; got 0"),
        ({"optimizer": {"learning_rate": float("nan")}}, "'optimizer.learning_rate': .*got nan"),
        ({"augment": 3}, "'augment': Input should be a dictionary"),
        ({"optimizer": {"weight_decay": 1e-4}}, "does nothing with adam; use optimizer.name=adamw"),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(raw, source="x.toml")


def test_bad_toml_and_missing_file(tmp_path):
    (tmp_path / "bad.toml").write_text("epochs = = 3")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")


def test_set_without_equals_is_refused():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignment("epochs")


def test_every_field_is_written():
    text = to_toml(TrainConfig())
    for field in dataclasses.fields(TrainConfig):
        assert field.name in text


def test_config_show_prints_the_shipped_recipe_and_space(capsys, tmp_path):
    assert shipped_recipes() == ["basic", "mobilenet", "resnet164", "resnet50", "vgg16", "wrn28_10"]
    assert main(["config", "show", "--arch", "vgg16"]) == 0
    assert capsys.readouterr().out == default_config_path("vgg16").read_text()
    assert main(["config", "show", "--arch", "vgg16", "--space"]) == 0
    assert capsys.readouterr().out == default_space_path("vgg16").read_text()
    assert main(["config", "show", "--arch", "vgg16", "--resolved"]) == 0
    (tmp_path / "copy.toml").write_text(capsys.readouterr().out)
    assert load_config(tmp_path / "copy.toml") == load_config(default_config_path("vgg16"))


def test_named_recipes_are_listed_shown_and_taken_by_config(capsys, tmp_path):
    assert main(["config", "show", "--recipe"]) == 0
    assert capsys.readouterr().out.split() == ["basic-bag15", "basic-elastic-ema"]
    assert main(["config", "show", "--recipe", "basic-elastic-ema"]) == 0
    shown = capsys.readouterr().out
    assert shown == (CONFIG_DIR / "recipes" / "basic-elastic-ema.toml").read_text()
    # The recipe is the default recipe with the flags it replaced (the bundle's, the strongest).
    flags = {"epochs": 20, "augment.elastic_alpha": 16.0, "optimizer.ema_momentum": 0.999}
    expected = apply_overrides(load_config(default_config_path("basic")), flags, "flags")
    assert load_config(config_file("basic-elastic-ema")) == expected
    (tmp_path / "basic-elastic-ema").write_text("epochs = 3\n")  # a file of that name wins
    assert config_file(str(tmp_path / "basic-elastic-ema")) == tmp_path / "basic-elastic-ema"
    assert main(["fit", "--config", "basic-bag16"]) == 2
    error = capsys.readouterr().err
    assert "basic-bag16: no such config file or named recipe (named: basic-bag15," in error


def test_an_architecture_without_a_recipe_is_named(capsys):
    assert main(["config", "show", "--arch", "vgg19"]) == 2
    error = capsys.readouterr().err
    assert "no recipe for architecture 'vgg19'" in error and "wrn28_10" in error
    with pytest.raises(ConfigError, match="no search space for architecture 'vgg19'"):
        default_space_path("vgg19")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--arch", "resnet50", "--set", "model.stem=large"],
            "'model.stem': Input should be 'small'",
        ),
        (["--set", "model.width=abc"], "'model.width': Input should be a valid integer; got 'abc'"),
        (["--set", "model.width=-3"], "'model.width': Input should be greater than 0; got -3"),
        (
            ["--arch", "vgg16", "--set", "model.dropout=1.5"],
            "'model.dropout': Input should be less",
        ),
        (
            ["--arch", "wrn28_10", "--set", "model.depth=12"],
            "'model.depth': Value error, must be 6n",
        ),
        (["--set", "model.depth=3"], "model 'basic' has no option depth; options: width, dropout"),
    ],
)
def test_bad_model_options_are_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    assert (
        main(["fit", *argv, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "run").exists()


def test_a_saved_config_holds_every_model_option_with_its_default(tmp_path):
    config = from_dict({"arch": "resnet50", "model": {"width": 8}})
    assert config.model == {"blocks": (3, 4, 6, 3), "width": 8, "stem": "small", "deskew": False}
    (tmp_path / "config.toml").write_text(to_toml(config))
    assert 'stem = "small"' in (tmp_path / "config.toml").read_text()
    assert load_config(tmp_path / "config.toml") == config
