"""Mutations: each history commit changes a repo's params so that the next plan shows every kind of action."""

from __future__ import annotations

import random
import re
from typing import Any

# Mutation kinds, in the order the history commits rotate through them (first five: every action).
KINDS = (
    "replace_cbd",
    "update",
    "replace",
    "count_down",
    "count_up",
    "replace_tr",
    "remove_key",
    "add_key",
    "remove_resource",
    "add_resource",
)
COUNT_MAX = 5


def _bump(value: str, rng: random.Random) -> str:
    """Next version of a value: its last number goes up (1.4.2 -> 1.4.3, v7 -> v8, 300 -> 360)."""
    if value.isdigit():
        return str(int(value) + 60) if int(value) >= 60 else str(int(value) + 1)
    matches = list(re.finditer(r"\d+", value))
    if not matches:
        return value + "-2"
    m = matches[-1]
    return value[: m.start()] + str(int(m.group()) + rng.choice((1, 1, 2))) + value[m.end() :]


def _label(key: str) -> str:
    env, _, name = key.rpartition(".")
    return f"{name} in {env}" if env else name


def _candidates(p: dict[str, Any], kind: str, used: set[str]) -> list[str]:
    if kind in ("replace_cbd", "update", "replace", "replace_tr"):
        keys = [k for k, kk in p["value_kinds"].items() if kk == kind]
    elif kind == "count_down":
        keys = [k for k, n in p["counts"].items() if n >= 2]
    elif kind == "count_up":
        keys = [k for k, n in p["counts"].items() if n < COUNT_MAX]
    elif kind == "remove_key":
        keys = [k for k, s in p["sets"].items() if len(s) >= 2]
    elif kind == "add_key":
        keys = [k for k, s in p["sets"].items() if set(p["set_pools"][k]) - set(s)]
    elif kind == "remove_resource":
        keys = [k for k, f in p["flags"].items() if f]
    else:  # add_resource
        keys = [k for k, f in p["flags"].items() if not f]
    return sorted(k for k in keys if k not in used)


def _apply(p: dict[str, Any], kind: str, key: str, rng: random.Random) -> str:
    """Mutate ``p`` in place; return the commit-message line that describes the change."""
    what = _label(key)
    if kind in ("replace_cbd", "update", "replace", "replace_tr"):
        old = p["values"][key]
        p["values"][key] = _bump(old, rng)
        return f"Bump {what} from {old} to {p['values'][key]}"
    if kind in ("count_down", "count_up"):
        old = p["counts"][key]
        step = rng.randint(1, min(2, old - 1 if kind == "count_down" else COUNT_MAX - old))
        p["counts"][key] = old - step if kind == "count_down" else old + step
        return f"Scale {what} from {old} to {p['counts'][key]}"
    if kind == "remove_key":
        gone = rng.choice(p["sets"][key])
        p["sets"][key].remove(gone)
        return f"Remove {gone!r} from {what}"
    if kind == "add_key":
        new = rng.choice([x for x in p["set_pools"][key] if x not in p["sets"][key]])
        p["sets"][key].append(new)
        return f"Add {new!r} to {what}"
    p["flags"][key] = kind == "add_resource"
    return f"{'Enable' if p['flags'][key] else 'Disable'} {what.removeprefix('enable_')}"


def mutate(p: dict[str, Any], rng: random.Random, rotation: int | None) -> str:
    """One history commit: a primary change (rotating through KINDS for coverage) plus 0-2 others."""
    used: set[str] = set()
    order = list(KINDS) if rotation is None else [KINDS[(rotation + i) % len(KINDS)] for i in range(len(KINDS))]
    if rotation is None:
        rng.shuffle(order)
    lines = []
    for kind in order:
        keys = _candidates(p, kind, used)
        if keys:
            key = rng.choice(keys)
            used.add(key)
            lines.append(_apply(p, kind, key, rng))
            break
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        options = [(k, key) for k in KINDS for key in _candidates(p, k, used)]
        if not options:
            break
        kind, key = rng.choice(options)
        used.add(key)
        lines.append(_apply(p, kind, key, rng))
    if not lines:
        return "Touch configuration"
    return lines[0] + ("\n\n" + "\n".join(f"- {line}" for line in lines[1:]) if lines[1:] else "")
