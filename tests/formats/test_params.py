"""formats.params: the typed path from a params.yaml section to a config, and its flags."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional, Tuple

import pytest

from formats.params import Config, ConfigError, add_flags, check_keys, coerce, flag_values, param


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    fps: float = param(2.0, help="frames per second", above=0)
    cameras: Tuple[int, ...] = param((2,), help="cameras", choices=(2, 3))
    lengths: Tuple[float, ...] = param((1.0,), help="lengths", above=0)


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    folder: str = param("", help="not a key", flag=False)
    rate: float = param(1e-4, help="learning rate", minimum=0.0, maximum=1.0)
    steps: int = param(10, help="steps", minimum=1)
    mode: str = param("a", help="mode", choices=("a", "b"))
    flip: bool = param(True, help="flip")
    split: Optional[str] = param(None, help="split file")
    inner: Inner = param(default_factory=Inner, help="inner options")

    def check(self):
        if self.mode == "b" and self.steps < 5:
            yield "steps: mode b needs >= 5 steps"


def test_coercion_by_annotation_hand_cases():
    assert coerce("1e-4", float) == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string
    assert coerce(3.0, int) == 3 and coerce("7", int) == 7
    assert coerce("no", bool) is False and coerce("True", bool) is True
    assert coerce("2,3", Tuple[int, ...]) == (2, 3) and coerce([2], Tuple[int, ...]) == (2,)
    assert coerce("null", Optional[str]) is None and coerce("x", Optional[str]) == "x"
    assert coerce(2011, str) == "2011"
    for value, hint in [("nan", float), ("inf", float), (2.5, int), ("maybe", bool), (True, int), (None, float)]:
        with pytest.raises(ValueError):
            coerce(value, hint)


def test_from_mapping_coerces_nested_and_keeps_defaults():
    config = Outer.from_mapping({"rate": "5e-4", "steps": "12", "inner": {"cameras": "2,3"}}, section="train")
    assert config.rate == pytest.approx(5e-4) and config.steps == 12
    assert config.inner == Inner(fps=2.0, cameras=(2, 3))
    assert config.to_mapping()["inner"] == {"fps": 2.0, "cameras": [2, 3], "lengths": [1.0]}


def test_unknown_keys_are_named_at_every_level():
    with pytest.raises(ConfigError, match="train: unknown key.*'lerning_rate'"):
        Outer.from_mapping({"lerning_rate": 1}, section="train")
    with pytest.raises(ConfigError, match="train.inner: unknown key.*'fsp'"):
        check_keys({"inner": {"fsp": 3}}, [Outer], "train")
    with pytest.raises(ConfigError, match="'folder'"):  # not a params key
        check_keys({"folder": "x"}, [Outer], "train")


def test_all_problems_reported_with_their_keys():
    with pytest.raises(ConfigError) as caught:
        Outer.from_mapping({"rate": 2.0, "mode": "c", "steps": 0, "inner": {"fps": -1, "cameras": [4]}}, section="t")
    message = str(caught.value)
    for expected in (
        "t.rate: must be <= 1.0",
        "t.mode: must be one of a, b",
        "t.steps: must be >= 1",
        "t.inner.fps: must be > 0",
        "t.inner.cameras: must be one of 2, 3",
    ):
        assert expected in message
    with pytest.raises(ConfigError, match=r"lengths: must be > 0, got -2.0"):
        Inner(lengths=(1.0, -2.0))  # bounds apply to every item of a tuple
    with pytest.raises(ConfigError, match="steps: mode b needs"):
        Outer(mode="b", steps=3)  # direct construction is checked the same way


def test_flags_are_typed_with_help_choices_and_section_defaults():
    parser = argparse.ArgumentParser()
    add_flags(parser, [Outer], {"rate": 5e-4, "inner": {"fps": 10.0}})
    assert "--folder" not in parser.format_help()
    help_text = parser.format_help()
    assert "learning rate (default: 0.0005)" in help_text and "{a, b}" in help_text
    args = parser.parse_args(["--steps=3", "--noflip", "--inner.cameras=3", "--split", "null"])
    values = flag_values(args, [Outer])
    assert values == {
        "rate": 5e-4,
        "steps": 3,
        "mode": "a",
        "flip": False,
        "split": None,
        "inner": {"fps": 10.0, "cameras": (3,), "lengths": (1.0,)},
    }
    assert parser.parse_args(["--flip=false"]).flip is False and parser.parse_args(["--flip"]).flip is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps=many"])
