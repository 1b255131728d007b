"""The repo families. Each has init(rng, cfg) -> params and render(params) -> (files, {workspace: instances}).

Params keep every mutable knob in the same five places so that mutations are generic:
counts{key: int}, values{key: str} + value_kinds{key: kind}, sets{key: list} + set_pools,
flags{key: bool}; names/style hold choices that never change after the first commit
(``style["flavor"]``: the resource flavor, see ``config.SyntheticConfig.resource_flavor``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.collect.synthetic.config import SyntheticConfig
from pipelines.collect.synthetic.families import app, cloud, envs, network, pipeline
from pipelines.collect.synthetic.text import Rendered


@dataclass(frozen=True)
class Family:
    init: Callable[[random.Random, SyntheticConfig], dict[str, Any]]
    render: Callable[[dict[str, Any]], Rendered]
    label: str  # short suffix of the repo name


FAMILIES: dict[str, Family] = {
    "app": Family(app.init, app.render, "app"),
    "network": Family(network.init, network.render, "net"),
    "envs": Family(envs.init, envs.render, "envs"),
    "pipeline": Family(pipeline.init, pipeline.render, "etl"),
    "aws": Family(lambda r, c: cloud.init_cloud(r, c, "aws"), cloud.render_aws, "aws"),
    "azurerm": Family(lambda r, c: cloud.init_cloud(r, c, "azurerm"), cloud.render_azurerm, "azure"),
    "google": Family(lambda r, c: cloud.init_cloud(r, c, "google"), cloud.render_google, "gcp"),
}
NONCLOUD_FAMILIES = ("app", "network", "envs", "pipeline")
CLOUD_FAMILIES = ("aws", "azurerm", "google")
