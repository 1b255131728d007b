"""Synthetic Terraform corpus: local git repositories that know their own plans.

The embedded default run has no network, so its data source is generated here: N git repositories
written like real infrastructure repos (variables with validation, locals, outputs, local and nested
modules, count/for_each in every form, shared modules across ``envs/*`` roots, lifecycle rules),
using only resources real ``terraform plan`` labels offline. A ``cloud_fraction`` of the repos is
written for aws/azurerm/google instead; those cannot be planned offline and are labelled later by the
static planner.

Two resource flavors (``SyntheticConfig.resource_flavor``), the same repos otherwise:
``terraform_data`` mixes ``null_resource`` (hashicorp/null 2.1.2, in the offline mirror) with terraform's
built-in ``terraform_data`` (>= 1.4; its ``input`` updates in place); ``null_resource`` writes every
resource as a null_resource with ``triggers`` and ``required_version = ">= 1.0"``, so PyPI's terraform
1.0.3 plans it (count, for_each, modules, replacement and create_before_destroy all remain; in-place
updates do not exist there). ``auto`` picks by the terraform on the generating machine.

The generator never parses its own HCL to know the answer. Each family renders files *and*, from the
same parameters, a model of every resource instance (``model.py``). The tests check both flavors
against real terraform (1.11.4 and 1.0.3).

    config.py      SyntheticConfig, the flavor and how ``auto`` resolves
    model.py       the instance model, fresh and history plans, the flavor fold
    text.py        HCL text helpers, versions blocks, shared vocabulary
    families/      one module per repo family (app, network, envs, pipeline, cloud)
    mutations.py   what each history commit changes
    corpus.py      repo specs, git, manifest, generate_corpus / load_manifest
"""

from pipelines.collect.synthetic.config import FLAVORS, Flavor, SyntheticConfig, resolve_flavor
from pipelines.collect.synthetic.corpus import MANIFEST, SyntheticRepo, generate_corpus, load_manifest

__all__ = [
    "FLAVORS",
    "MANIFEST",
    "Flavor",
    "SyntheticConfig",
    "SyntheticRepo",
    "generate_corpus",
    "load_manifest",
    "resolve_flavor",
]
