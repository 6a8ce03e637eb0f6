"""The strict config system: fields, build, overrides, YAML, hydration."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import yaml
from omegaconf import OmegaConf

from theseus.config import (
    apply_overrides,
    build,
    configuration,
    configure,
    current_config,
    field,
    load_yaml,
    parse_override,
    patch,
    resolve,
    schema,
    to_yaml,
)
from theseus.errors import ConfigError


@dataclass
class Inner:
    """Deepest level."""

    depth: int = field("deep/inner/depth", default=3)
    maybe: str | None = field("deep/inner/maybe", default=None)


@dataclass
class Middle:
    """Holds an Inner without a key of its own."""

    inner: Inner = dataclasses.field(default_factory=Inner)
    width: float = field("deep/width", default=1.5)


@dataclass
class Outer:
    """Top of a three-level nest."""

    middle: Middle = dataclasses.field(default_factory=Middle)
    name: str = field("top/name", default="x")
    layers: list[int] = field("top/layers", default_factory=lambda: [1, 2])
    table: dict[str, Any] = field("top/table", default_factory=dict)
    mode: Literal["a", "b"] = field("top/mode", default="a")
    required: int = field("top/required")


@dataclass
class Arch:
    """Model-ish fields."""

    n_layers: int = field("architecture/n_layers", default=2)
    n_embd: int = field("architecture/n_embd", default=32)


@dataclass
class ArchAgain:
    """Declares n_layers again with the same default (allowed)."""

    n_layers: int = field("architecture/n_layers", default=2)
    dropout: float = field("architecture/dropout", default=0.0)


@dataclass
class ArchConflict:
    """Declares n_layers with a different default (an error)."""

    n_layers: int = field("architecture/n_layers", default=12)


def test_nesting_to_any_depth_keeps_every_level():
    cfg = build(Outer)
    assert cfg.deep.inner.depth == 3
    assert cfg.deep.width == 1.5
    assert cfg.top.name == "x"
    assert OmegaConf.is_missing(cfg.top, "required")


def test_none_is_a_legal_default():
    cfg = build(Inner)
    assert cfg.deep.inner.maybe is None
    with configuration(cfg):
        assert configure(Inner).maybe is None


def test_shared_key_with_one_default_is_fine():
    cfg = build(Arch, ArchAgain)
    assert cfg.architecture.n_layers == 2
    sch = schema(Arch, ArchAgain)
    assert len(sch.fields["architecture.n_layers"].owners) == 2


def test_conflicting_defaults_name_both_classes():
    with pytest.raises(ConfigError) as err:
        build(Arch, ArchConflict)
    msg = str(err.value)
    assert "architecture.n_layers" in msg and "Arch" in msg and "ArchConflict" in msg
    assert "???" not in msg


def test_unknown_override_suggests_the_closest_key():
    sch = schema(Arch)
    tree = OmegaConf.to_container(build(Arch))
    with pytest.raises(ConfigError, match=r"did you mean architecture\.n_layers\?"):
        apply_overrides(sch, tree, ["architecture.n_layerz=3"])
    with pytest.raises(ConfigError, match="did you mean architecture.n_layers"):
        apply_overrides(sch, tree, ["model.n_layers=3"])


def test_wrong_type_names_key_type_and_value():
    sch = schema(Arch)
    tree = OmegaConf.to_container(build(Arch))
    with pytest.raises(ConfigError) as err:
        apply_overrides(sch, tree, ["architecture.n_layers=abc"])
    assert "architecture.n_layers" in str(err.value)
    assert "int" in str(err.value) and "'abc'" in str(err.value)


def test_overrides_take_yaml_values():
    assert parse_override("a.b=[1,2]") == ("a.b", [1, 2])
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override('a.b="hello world"') == ("a.b", "hello world")
    assert parse_override("a.b='3'") == ("a.b", "3")
    assert parse_override("a/b=1") == ("a.b", 1)
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_lists_dicts_literals_and_null_overrides():
    cfg = resolve(
        [Outer],
        overrides=[
            "top.layers=[4,5,6]",
            "top.table={a: 1}",
            "top.mode=b",
            "deep.inner.maybe=null",
            "top.required=7",
        ],
    )
    with configuration(cfg):
        obj = configure(Outer)
    assert obj.layers == [4, 5, 6]
    assert obj.table == {"a": 1}
    assert obj.mode == "b"
    assert obj.middle.inner.maybe is None
    assert obj.required == 7
    with pytest.raises(ConfigError, match="top.mode"):
        resolve([Outer], overrides=["top.mode=c"])


def test_float_accepts_ints_and_exponent_strings():
    @dataclass
    class Opt:
        lr: float = field("optimization/lr", default=1e-3)

    cfg = resolve([Opt], overrides=["optimization.lr=3e-4"])
    assert cfg.optimization.lr == pytest.approx(3e-4)
    cfg = resolve([Opt], overrides=["optimization.lr=1"])
    with configuration(cfg):
        assert configure(Opt).lr == 1.0


def test_precedence_defaults_yaml_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("architecture:\n  n_layers: 5\n  n_embd: 48\n")
    tree = load_yaml(path)
    cfg = resolve([Arch], (tree, " in c.yaml"), overrides=["architecture.n_layers=7"])
    assert cfg.architecture.n_layers == 7  # command line beats YAML
    assert cfg.architecture.n_embd == 48  # YAML beats default
    assert resolve([Arch]).architecture.n_layers == 2


def test_unknown_yaml_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key architecture.n_layer .*did you mean"):
        resolve([Arch], ({"architecture": {"n_layer": 3}}, " in x.yaml"))
    with pytest.raises(ConfigError, match="unknown config key trainig"):
        resolve([Arch], ({"trainig": {"x": 1}}, " in x.yaml"))


def test_malformed_yaml_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("architecture:\n  n_layers: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML.*line"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_round_trip_build_yaml_load_hydrate(tmp_path):
    cfg = resolve([Outer], overrides=["top.required=1", "top.table={k: [1, 2]}"])
    with configuration(cfg):
        first = configure(Outer)
    path = tmp_path / "r.yaml"
    path.write_text(to_yaml(cfg))
    again = resolve([Outer], (load_yaml(path), ""))
    with configuration(again):
        second = configure(Outer)
    assert first == second
    assert yaml.safe_load(path.read_text())["top"]["required"] == 1


def test_missing_value_is_reported_on_hydration():
    cfg = build(Outer)
    with configuration(cfg), pytest.raises(ConfigError, match="top.required"):
        configure(Outer)


def test_configure_outside_configuration_is_an_error():
    with pytest.raises(ConfigError, match="no active configuration"):
        current_config()


def test_patch_is_temporary():
    cfg = build(Arch)
    with configuration(cfg):
        with patch() as p:
            p.architecture.n_layers = 9
            assert configure(Arch).n_layers == 9
        assert configure(Arch).n_layers == 2


def test_field_rejects_bad_keys_and_double_defaults():
    with pytest.raises(ConfigError, match="must be a slash path"):
        field("a.b", default=1)
    with pytest.raises(ConfigError, match="not both"):
        field("a/b", default=1, default_factory=list)


def test_mutable_defaults_are_not_shared():
    @dataclass
    class L:
        items: list[int] = field("x/items", default=[1])

    a, b = L(), L()
    a.items.append(2)
    assert b.items == [1]


def test_components_are_followed():
    @dataclass
    class Sub:
        k: int = field("sub/k", default=1)

    @dataclass
    class Parent:
        j: int = field("parent/j", default=2)

        @classmethod
        def components(cls):
            return [Sub]

    cfg = build(Parent)
    assert cfg.sub.k == 1 and cfg.parent.j == 2


def test_fields_called_name_and_parent_are_configured_on_plain_dataclasses():
    @dataclass
    class Named:
        name: str = field("thing/name", default="a")
        parent: str = field("thing/parent", default="b")

    with configuration(resolve([Named], overrides=["thing.name=x", "thing.parent=y"])):
        got = configure(Named)
    assert (got.name, got.parent) == ("x", "y")


@dataclass
class Budget:
    """One changeable key, one left unclassified."""

    steps: int = field("run/steps", default=10, changeable=True)
    width: int = field("run/width", default=4)


@dataclass
class BudgetTwin:
    """Declares run/steps again without calling it changeable."""

    steps: int = field("run/steps", default=10)


def test_keys_are_fixed_unless_every_declaring_class_says_changeable():
    assert schema(Budget).changeable("run.steps")
    assert not schema(Budget).changeable("run.width")  # unclassified: fixed
    assert not schema(Budget).changeable("run.nothing")  # unknown: fixed
    assert not schema(Budget, BudgetTwin).changeable("run.steps")  # one class disagrees: fixed


def test_a_misplaced_key_is_suggested_by_its_leaf_across_sections():
    from theseus.recipes.gpt import PretrainGPT

    sch = schema(*PretrainGPT.config())
    assert sch.suggest("training.lr") == " (did you mean optimization.lr?)"
    assert sch.suggest("data.batch_size") in (" (did you mean training.batch_size?)", " (did you mean eval.batch_size?)")
    assert sch.suggest("architecture.n_layer") == " (did you mean architecture.n_layers?)"  # a typo: by spelling


def test_a_malformed_value_shows_how_it_is_written():
    from theseus.recipes.gpt import PretrainGPT

    sch = schema(*PretrainGPT.config())
    for bad in ("shakespeare", ["shakespeare"], [{"rate": 1.0}], [{"nam": "x"}], {"name": "x"}):
        with pytest.raises(ConfigError, match=r"training.data expects list\[DataSource\].*write it as \[\{name: shakespeare, rate: 1.0\}\]"):
            apply_overrides(sch, {}, [f"training.data={yaml.safe_dump(bad, default_flow_style=True).strip()}"])
