"""The table of source rules, read from training/source_rules.toml into Rule objects."""

import re
import tomllib
from dataclasses import asdict, fields

import pytest

from htsat_live.training.sources import (
    LABELS,
    RULES_FILE,
    Rule,
    read_rules,
    source_packages,
    source_rules,
)


def test_the_table_holds_its_rules_in_order():
    rules, packages = source_rules(), source_packages()
    assert len(rules) == 124 and len(packages) == 48
    assert rules[0] == Rule(
        "Speech", "asterisk-core-sounds-en-wav", r"usr/share/asterisk/sounds/(?P<group>en_US_f_Allison)/[^/]+\.wav"
    )
    assert Rule("Bird", "openttd-opensfx", r"cat-audio/(66|72)_tropical_bird_[12]\.wav") in rules
    assert (
        Rule(
            "Speech",
            "tuxpaint-stamps-default",
            r"usr/share/tuxpaint/stamps/.+_desc_(?P<group>[a-z]{2}(_[A-Za-z]+)?)\.ogg",
        )
        in rules
    )
    assert rules[-1] == Rule("Water", "kolf", r"usr/share/kolf/sounds/puddle\.wav")
    assert [rule.label for rule in rules] == sorted(
        (rule.label for rule in rules), key=LABELS.index
    )  # grouped by class
    assert packages == tuple(sorted({rule.package for rule in rules}))


def test_every_field_round_trips():
    rules = source_rules()
    entries = tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))["rules"]
    assert [asdict(rule) for rule in rules] == entries  # nothing dropped, added or changed on the way in
    names = [field.name for field in fields(Rule)]
    for rule in rules:
        assert all(isinstance(getattr(rule, name), str) and getattr(rule, name) for name in names)
        assert rule.label in LABELS
        assert set(re.compile(rule.pattern).groupindex) <= {"group"}


def test_an_entry_with_an_unknown_field_is_refused(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("rules = [{ label = 'Bird', package = 'p', patern = 'x' }]\n", encoding="utf-8")
    with pytest.raises(TypeError, match="patern"):
        read_rules(path)
