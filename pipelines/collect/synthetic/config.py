"""What to generate, and which resource flavor the terraform that will plan the corpus understands."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

Flavor = Literal["terraform_data", "null_resource"]
FLAVORS: tuple[Flavor, ...] = ("terraform_data", "null_resource")


class SyntheticConfig(BaseModel):
    """What to generate; the same config always gives the same repositories and commit SHAs."""

    model_config = ConfigDict(extra="forbid")

    n_repos: int = Field(12, ge=1)
    seed: int = 0
    commits_per_repo: int = Field(3, ge=1)  # commit 0 is the initial config, later ones mutate it
    cloud_fraction: float = Field(0.25, ge=0.0, le=1.0)  # aws/azurerm/google repos (static planner)
    max_workspaces_per_repo: int = Field(3, ge=1)
    # terraform_data: the built-in resource (terraform >= 1.4), with in-place updates; null_resource: only
    # hashicorp/null 2.1.2 from the mirror (any terraform >= 1.0, e.g. PyPI's 1.0.3), no in-place updates;
    # auto: terraform_data when the terraform on this machine (find_terraform) is >= 1.4, else null_resource
    resource_flavor: Literal["auto", "terraform_data", "null_resource"] = "auto"


def resolve_flavor(cfg: SyntheticConfig) -> Flavor:
    """The flavor to render: ``cfg.resource_flavor``, or for ``auto`` the one this machine's terraform plans.

    ``auto`` asks ``find_terraform()`` (PATH, else the PyPI build setup installed) and does not install
    anything. With no terraform here it picks null_resource, which every terraform the plan nodes may get
    can plan. On a cluster whose driver has a different terraform than the plan nodes, set the flavor.
    """
    if cfg.resource_flavor != "auto":
        return cfg.resource_flavor
    from pipelines.terraform.install import find_terraform, supports_terraform_data, terraform_version

    tf = find_terraform()
    if tf is None:
        logger.warning(
            "synthetic: no terraform on this machine, so resource_flavor=auto renders null_resource "
            "(plans on any terraform >= 1.0; set resource_flavor=terraform_data when plan nodes have >= 1.4)"
        )
        return "null_resource"
    version = terraform_version(str(tf))
    flavor: Flavor = "terraform_data" if supports_terraform_data(version) else "null_resource"
    if flavor == "null_resource":
        logger.warning(
            "synthetic: terraform %s at %s predates terraform_data (1.4): rendering the null_resource flavor "
            "(no in-place updates in history plans). Fix: put terraform >= 1.4 on PATH.",
            version,
            tf,
        )
    return flavor
