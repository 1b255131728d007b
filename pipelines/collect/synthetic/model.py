"""The instance model: what decides each resource instance's planned action, and the plans it implies.

Each family renders files *and*, from the same parameters, one ``Inst`` per resource instance. Fresh
plans are "create" for every instance; history plans (commit N applied over commit N-1) are a diff of two
models. Rules the families keep so that the model stays exact: create_before_destroy resources read
nothing from other resources (terraform would propagate CBD to their dependencies), and references are to
``.id`` of null_resources only (unknown after a replace: a dependent trigger forces a replace, a
dependent ``input`` an update).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Inst:
    """One resource instance as terraform will see it, reduced to what decides its planned action."""

    force: tuple[Any, ...] = ()  # inputs of triggers / triggers_replace: a change replaces
    update: tuple[Any, ...] = ()  # inputs of terraform_data.input: a change updates in place
    cbd: bool = False  # lifecycle.create_before_destroy
    force_refs: tuple[str, ...] = ()  # instances whose id feeds ``force``
    update_refs: tuple[str, ...] = ()  # instances whose id feeds ``update``


Instances = dict[str, Inst]


def fresh_plan(insts: Instances) -> list[dict[str, Any]]:
    return [{"address": a, "actions": ["create"]} for a in sorted(insts)]


def history_plan(old: Instances, new: Instances) -> list[dict[str, Any]]:
    """Actions when ``new`` is planned over the applied ``old`` (no-op rows omitted)."""
    memo: dict[str, list[str]] = {}

    def unknown_id(addr: str) -> bool:  # after this plan the instance's id is not known yet
        return action(addr) in (["create"], ["delete", "create"], ["create", "delete"])

    def action(addr: str) -> list[str]:
        if addr not in memo:
            n, o = new[addr], old.get(addr)
            if o is None:
                memo[addr] = ["create"]
            elif n.force != o.force or any(unknown_id(r) for r in n.force_refs):
                memo[addr] = ["create", "delete"] if n.cbd else ["delete", "create"]
            elif n.update != o.update or any(unknown_id(r) for r in n.update_refs):
                memo[addr] = ["update"]
            else:
                memo[addr] = ["no-op"]
        return memo[addr]

    rows = [{"address": a, "actions": ["delete"]} for a in old.keys() - new.keys()]
    rows += [{"address": a, "actions": action(a)} for a in new if action(a) != ["no-op"]]
    return sorted(rows, key=lambda r: r["address"])


def for_flavor(insts: Instances, flavor: str) -> Instances:
    """The model of the same resources rendered in ``flavor``.

    In the ``null_resource`` flavor each ``terraform_data`` becomes a ``null_resource`` of the same name
    whose ``triggers`` hold what was its ``input`` (and ``triggers_replace``): null_resource has no
    attribute that updates in place, so every input is a replacement input.
    """
    if flavor == "terraform_data":
        return insts
    out: Instances = {}
    for addr, inst in insts.items():
        folded = replace(
            inst,
            force=inst.force + inst.update,
            update=(),
            force_refs=inst.force_refs + inst.update_refs,
            update_refs=(),
        )
        out[_null_address(addr)] = replace(folded, force_refs=tuple(_null_address(r) for r in folded.force_refs))
    return out


def _null_address(addr: str) -> str:
    """``module.m.terraform_data.x[0]`` → ``module.m.null_resource.x[0]`` (module names never say terraform_data)."""
    head, sep, tail = addr.rpartition("terraform_data.")
    return f"{head}null_resource.{tail}" if sep and (not head or head.endswith(".")) else addr
