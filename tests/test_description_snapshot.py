"""Every built-in template's sentences, pinned against a snapshot taken when the phrases were Python literals.

For each template: its serialised form, the all-negative sentence, the sentence and W-query words of
every attribute alone, and eight seeded random attribute sets, each stored as a short hash in
``tests/data/description_snapshot.json`` (so a failure names the template and attribute that
changed). After a deliberate phrase change, rewrite the snapshot with
``python tests/test_description_snapshot.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

from clear_sdk.description import DescriptionTemplate, describe, get_template, list_templates, template_for

SNAPSHOT = Path(__file__).parent / "data" / "description_snapshot.json"
# the generic template has no phrase table: these names exercise its word splitting
GENERIC_NAMES = ["LongHair", "Age18-60", "Skirt&Dress", "hs-BaldHead", "my_attr_name", "TShirt"]


def _h(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def snapshot_of(tpl: DescriptionTemplate) -> dict[str, Any]:
    names = tpl.attribute_names or GENERIC_NAMES
    rng = random.Random(tpl.name)
    combos = []
    for _ in range(8):
        pos = [a for a in names if rng.random() < 0.3]
        combos.append([pos, describe(pos, names, tpl), tpl.words(pos, names)])
    return {
        "template": _h(tpl.to_dict()),
        "detected": template_for(names).name,
        "none": _h(describe([], names, tpl)),
        "attributes": {a: _h([describe([a], names, tpl), tpl.words([a], names)]) for a in names},
        "random": _h(combos),
    }


def current() -> dict[str, Any]:
    return {name: snapshot_of(get_template(name)) for name in list_templates()}


def test_descriptions_match_the_snapshot() -> None:
    want = json.loads(SNAPSHOT.read_text())
    got = current()
    assert list(got) == list(want), "the built-in templates (or their order, which breaks detection ties) changed"
    for name, snap in want.items():
        tpl = get_template(name)
        names = tpl.attribute_names or GENERIC_NAMES
        assert list(got[name]["attributes"]) == list(snap["attributes"]), f"{name}: attribute names or order changed"
        changed = [a for a, h in snap["attributes"].items() if got[name]["attributes"][a] != h]
        assert not changed, f"{name}: sentences changed for {changed}, e.g. {describe([changed[0]], names, tpl)!r}"
        for key in ("template", "detected", "none", "random"):
            assert got[name][key] == snap[key], f"{name}: {key} changed"


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=1) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
