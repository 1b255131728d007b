"""cloud families (aws, azurerm, google): not plannable offline; every instance is "create" on fresh
state, labelled later by the static planner. They render the same in every resource flavor.
"""

from __future__ import annotations

import random
from typing import Any

from pipelines.collect.synthetic.config import SyntheticConfig
from pipelines.collect.synthetic.model import Inst
from pipelines.collect.synthetic.text import (
    ENVIRONMENTS,
    GITIGNORE,
    PROJECTS,
    Rendered,
    hcl,
    join_blocks,
    make_params,
    readme,
    semver,
    tpl,
    variable,
)

CLOUD_BUCKETS = ("assets", "backups", "uploads", "reports", "exports", "logs-archive")


def init_cloud(rng: random.Random, cfg: SyntheticConfig, family: str) -> dict[str, Any]:
    project = rng.choice(PROJECTS)
    zones = {
        "aws": ("us-east-1a", "us-east-1b", "us-east-1c"),
        "azurerm": ("frontend", "backend", "data"),
        "google": ("apps", "data", "ops"),
    }[family]
    return make_params(
        names={
            "project": project,
            "environment": rng.choice(ENVIRONMENTS[:3]),
            "octet": rng.randint(0, 250),
            "ports": rng.sample((22, 80, 443, 8080, 8443), rng.randint(2, 3)),
            "vms": rng.sample(("jumpbox", "build", "metrics", "worker"), rng.randint(1, 2)),
            "subscriptions": rng.sample(("audit", "indexer", "mailer", "billing"), 2),
        },
        style={"root": "."},
        counts={"instance_count": rng.randint(1, 3)},
        values={"app_version": semver(rng)},
        value_kinds={"app_version": "update"},
        sets={"zones": rng.sample(zones, 2), "buckets": rng.sample(CLOUD_BUCKETS, rng.randint(1, 3))},
        set_pools={"zones": list(zones), "buckets": list(CLOUD_BUCKETS)},
        flags={"enable_extra": rng.random() < 0.6},
    )


def cloud_versions(provider: str, version: str) -> str:
    return tpl(
        """
        terraform {
          required_version = ">= 1.5"

          required_providers {
            <<provider>> = {
              source  = "hashicorp/<<provider>>"
              version = "<<version>>"
            }
          }
        }
    """,
        provider=provider,
        version=version,
    )


def render_aws(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    zones = sets["zones"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in zones}
    variables = join_blocks(
        variable("region", "string", "us-east-1"),
        variable("project", "string", n["project"]),
        variable(
            "environment",
            "string",
            n["environment"],
            validation=(
                'contains(["dev", "staging", "prod"], var.environment)',
                "The environment must be dev, staging or prod.",
            ),
        ),
        variable("app_version", "string", p["values"]["app_version"]),
        variable("vpc_cidr", "string", f"10.{n['octet']}.0.0/16"),
        variable("private_subnets", "map(string)", subnets, "Availability zone => CIDR."),
        variable("instance_count", "number", p["counts"]["instance_count"]),
        variable("instance_type", "string", "t3.micro"),
        variable("ingress_ports", "list(number)", n["ports"]),
        variable("buckets", "list(string)", sets["buckets"]),
        variable("enable_access_logs", "bool", p["flags"]["enable_extra"]),
    )
    main = tpl("""
        provider "aws" {
          region = var.region

          default_tags {
            tags = local.tags
          }
        }

        locals {
          name = "${var.project}-${var.environment}"
          tags = {
            Project     = var.project
            Environment = var.environment
            Version     = var.app_version
            ManagedBy   = "terraform"
          }
        }

        data "aws_ami" "ubuntu" {
          most_recent = true
          owners      = ["099720109477"]

          filter {
            name   = "name"
            values = ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
          }
        }

        resource "aws_vpc" "main" {
          cidr_block           = var.vpc_cidr
          enable_dns_hostnames = true

          tags = {
            Name = "${local.name}-vpc"
          }
        }

        resource "aws_subnet" "private" {
          for_each = var.private_subnets

          vpc_id            = aws_vpc.main.id
          cidr_block        = each.value
          availability_zone = each.key

          tags = {
            Name = format("%s-private-%s", local.name, each.key)
          }
        }

        resource "aws_security_group" "web" {
          name        = "${local.name}-web"
          description = "Web tier"
          vpc_id      = aws_vpc.main.id

          dynamic "ingress" {
            for_each = var.ingress_ports
            content {
              description = "port ${ingress.value}"
              from_port   = ingress.value
              to_port     = ingress.value
              protocol    = "tcp"
              cidr_blocks = ["0.0.0.0/0"]
            }
          }

          egress {
            from_port   = 0
            to_port     = 0
            protocol    = "-1"
            cidr_blocks = ["0.0.0.0/0"]
          }
        }

        resource "aws_instance" "web" {
          count = var.instance_count

          ami                    = data.aws_ami.ubuntu.id
          instance_type          = var.instance_type
          subnet_id              = values(aws_subnet.private)[count.index % length(aws_subnet.private)].id
          vpc_security_group_ids = [aws_security_group.web.id]

          user_data = <<-EOT
            #!/bin/bash
            hostnamectl set-hostname ${local.name}-web-${count.index + 1}
          EOT

          tags = {
            Name = format("%s-web-%02d", local.name, count.index + 1)
          }
        }

        resource "aws_s3_bucket" "data" {
          for_each = toset(var.buckets)

          bucket = "${local.name}-${each.key}"
        }

        resource "aws_s3_bucket_versioning" "data" {
          for_each = aws_s3_bucket.data

          bucket = each.value.id

          versioning_configuration {
            status = "Enabled"
          }
        }

        module "access_logs" {
          source = "./modules/log_bucket"
          count  = var.enable_access_logs ? 1 : 0

          name           = "${local.name}-access-logs"
          retention_days = 30
        }

        output "instance_ids" {
          value = aws_instance.web[*].id
        }
    """)
    log_mod = join_blocks(
        variable("name", "string", required=True),
        variable("retention_days", "number", 90),
        tpl("""
            resource "aws_s3_bucket" "this" {
              bucket = var.name
            }

            resource "aws_s3_bucket_lifecycle_configuration" "this" {
              bucket = aws_s3_bucket.this.id

              rule {
                id     = "expire"
                status = "Enabled"

                expiration {
                  days = var.retention_days
                }
              }
            }
        """),
    )
    files = {
        "versions.tf": cloud_versions("aws", "~> 5.0"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/log_bucket/main.tf": log_mod,
        ".gitignore": GITIGNORE,
        "README.md": readme(f"{n['project']} on AWS", "VPC, web tier and data buckets.", "`terraform plan`"),
    }
    addrs = ["aws_vpc.main", "aws_security_group.web"]
    addrs += [f'aws_subnet.private["{z}"]' for z in subnets]
    addrs += [f"aws_instance.web[{i}]" for i in range(p["counts"]["instance_count"])]
    for b in sets["buckets"]:
        addrs += [f'aws_s3_bucket.data["{b}"]', f'aws_s3_bucket_versioning.data["{b}"]']
    if p["flags"]["enable_extra"]:
        addrs += [
            "module.access_logs[0].aws_s3_bucket.this",
            "module.access_logs[0].aws_s3_bucket_lifecycle_configuration.this",
        ]
    return files, {".": dict.fromkeys(addrs, Inst())}


def render_azurerm(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in sets["zones"]}
    variables = join_blocks(
        variable("location", "string", "westeurope"),
        variable("project", "string", n["project"]),
        variable("environment", "string", n["environment"]),
        variable("app_version", "string", p["values"]["app_version"]),
        variable("address_space", "string", f"10.{n['octet']}.0.0/16"),
        variable("subnets", "map(string)", subnets, "Subnet name => address prefix."),
        variable("allowed_ports", "list(number)", n["ports"]),
        variable("storage_account_count", "number", p["counts"]["instance_count"]),
        variable("vm_names", "list(string)", n["vms"]),
        variable("enable_monitoring", "bool", p["flags"]["enable_extra"]),
    )
    main = tpl("""
        provider "azurerm" {
          features {}
        }

        locals {
          name = "${var.project}-${var.environment}"
          tags = {
            project     = var.project
            environment = var.environment
            version     = var.app_version
          }
        }

        resource "azurerm_resource_group" "main" {
          name     = "rg-${local.name}"
          location = var.location
          tags     = local.tags
        }

        resource "azurerm_virtual_network" "main" {
          name                = "vnet-${local.name}"
          address_space       = [var.address_space]
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name
        }

        resource "azurerm_subnet" "this" {
          for_each = var.subnets

          name                 = "snet-${each.key}"
          resource_group_name  = azurerm_resource_group.main.name
          virtual_network_name = azurerm_virtual_network.main.name
          address_prefixes     = [each.value]
        }

        resource "azurerm_network_security_group" "web" {
          name                = "nsg-${local.name}-web"
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name

          dynamic "security_rule" {
            for_each = var.allowed_ports
            content {
              name                       = "allow-${security_rule.value}"
              priority                   = 100 + security_rule.key
              direction                  = "Inbound"
              access                     = "Allow"
              protocol                   = "Tcp"
              source_port_range          = "*"
              destination_port_range     = tostring(security_rule.value)
              source_address_prefix      = "*"
              destination_address_prefix = "*"
            }
          }
        }

        resource "azurerm_storage_account" "data" {
          count = var.storage_account_count

          name                     = format("st%s%02d", replace(var.project, "-", ""), count.index + 1)
          resource_group_name      = azurerm_resource_group.main.name
          location                 = azurerm_resource_group.main.location
          account_tier             = "Standard"
          account_replication_type = "LRS"
          min_tls_version          = "TLS1_2"
        }

        module "vm" {
          source   = "./modules/linux_vm"
          for_each = toset(var.vm_names)

          name                = "${local.name}-${each.key}"
          resource_group_name = azurerm_resource_group.main.name
          location            = azurerm_resource_group.main.location
          subnet_id           = values(azurerm_subnet.this)[0].id
        }

        resource "azurerm_log_analytics_workspace" "main" {
          count = var.enable_monitoring ? 1 : 0

          name                = "log-${local.name}"
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name
          sku                 = "PerGB2018"
          retention_in_days   = 30
        }
    """)
    vm_mod = join_blocks(
        variable("name", "string", required=True),
        variable("resource_group_name", "string", required=True),
        variable("location", "string", required=True),
        variable("subnet_id", "string", required=True),
        variable("size", "string", "Standard_B2s"),
        tpl("""
            resource "azurerm_network_interface" "this" {
              name                = "nic-${var.name}"
              location            = var.location
              resource_group_name = var.resource_group_name

              ip_configuration {
                name                          = "internal"
                subnet_id                     = var.subnet_id
                private_ip_address_allocation = "Dynamic"
              }
            }

            resource "azurerm_linux_virtual_machine" "this" {
              name                  = "vm-${var.name}"
              resource_group_name   = var.resource_group_name
              location              = var.location
              size                  = var.size
              admin_username        = "azureuser"
              network_interface_ids = [azurerm_network_interface.this.id]

              admin_ssh_key {
                username   = "azureuser"
                public_key = file("${path.module}/id_rsa.pub")
              }

              os_disk {
                caching              = "ReadWrite"
                storage_account_type = "Standard_LRS"
              }

              source_image_reference {
                publisher = "Canonical"
                offer     = "0001-com-ubuntu-server-jammy"
                sku       = "22_04-lts"
                version   = "latest"
              }
            }
        """),
    )
    files = {
        "versions.tf": cloud_versions("azurerm", "~> 3.100"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/linux_vm/main.tf": vm_mod,
        ".gitignore": GITIGNORE,
        "README.md": readme(f"{n['project']} on Azure", "Network, storage and VMs.", "`terraform plan`"),
    }
    addrs = ["azurerm_resource_group.main", "azurerm_virtual_network.main", "azurerm_network_security_group.web"]
    addrs += [f'azurerm_subnet.this["{z}"]' for z in subnets]
    addrs += [f"azurerm_storage_account.data[{i}]" for i in range(p["counts"]["instance_count"])]
    for vm in n["vms"]:
        addrs += [
            f'module.vm["{vm}"].azurerm_network_interface.this',
            f'module.vm["{vm}"].azurerm_linux_virtual_machine.this',
        ]
    if p["flags"]["enable_extra"]:
        addrs.append("azurerm_log_analytics_workspace.main[0]")
    return files, {".": dict.fromkeys(addrs, Inst())}


def render_google(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in sets["zones"]}
    variables = join_blocks(
        variable("project_id", "string", f"{n['project']}-{n['environment']}-4711"),
        variable("region", "string", "europe-west1"),
        variable("name", "string", f"{n['project']}-{n['environment']}"),
        variable("app_version", "string", p["values"]["app_version"]),
        variable("subnets", "map(string)", subnets),
        variable("allowed_ports", "list(number)", n["ports"]),
        variable("worker_count", "number", p["counts"]["instance_count"]),
        variable("machine_type", "string", "e2-small"),
        variable("buckets", "list(string)", sets["buckets"]),
        variable("enable_events", "bool", p["flags"]["enable_extra"]),
    )
    main = tpl(
        """
        provider "google" {
          project = var.project_id
          region  = var.region
        }

        locals {
          labels = {
            app     = var.name
            version = replace(var.app_version, ".", "-")
          }
        }

        resource "google_compute_network" "vpc" {
          name                    = "${var.name}-vpc"
          auto_create_subnetworks = false
        }

        resource "google_compute_subnetwork" "this" {
          for_each = var.subnets

          name          = "${var.name}-${each.key}"
          ip_cidr_range = each.value
          region        = var.region
          network       = google_compute_network.vpc.id
        }

        resource "google_compute_firewall" "ingress" {
          name    = "${var.name}-ingress"
          network = google_compute_network.vpc.name

          dynamic "allow" {
            for_each = var.allowed_ports
            content {
              protocol = "tcp"
              ports    = [tostring(allow.value)]
            }
          }

          source_ranges = ["0.0.0.0/0"]
        }

        resource "google_compute_instance" "worker" {
          count = var.worker_count

          name         = format("%s-worker-%02d", var.name, count.index + 1)
          machine_type = var.machine_type
          zone         = "${var.region}-b"
          labels       = local.labels

          boot_disk {
            initialize_params {
              image = "debian-cloud/debian-12"
            }
          }

          network_interface {
            subnetwork = values(google_compute_subnetwork.this)[0].id
          }
        }

        resource "google_storage_bucket" "data" {
          for_each = toset(var.buckets)

          name                        = "${var.project_id}-${each.key}"
          location                    = "EU"
          uniform_bucket_level_access = true

          versioning {
            enabled = true
          }
        }

        module "events" {
          source = "./modules/pubsub"
          count  = var.enable_events ? 1 : 0

          topic         = "${var.name}-events"
          subscriptions = <<subs>>
        }
    """,
        subs=hcl(n["subscriptions"]),
    )
    pubsub = join_blocks(
        variable("topic", "string", required=True),
        variable("subscriptions", "list(string)", []),
        tpl("""
            resource "google_pubsub_topic" "this" {
              name = var.topic
            }

            resource "google_pubsub_subscription" "this" {
              for_each = toset(var.subscriptions)

              name                 = "${var.topic}-${each.key}"
              topic                = google_pubsub_topic.this.id
              ack_deadline_seconds = 30
            }
        """),
    )
    files = {
        "versions.tf": cloud_versions("google", "~> 5.0"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/pubsub/main.tf": pubsub,
        ".gitignore": GITIGNORE,
        "README.md": readme(f"{n['project']} on GCP", "VPC, workers, buckets and events.", "`terraform plan`"),
    }
    addrs = ["google_compute_network.vpc", "google_compute_firewall.ingress"]
    addrs += [f'google_compute_subnetwork.this["{z}"]' for z in subnets]
    addrs += [f"google_compute_instance.worker[{i}]" for i in range(p["counts"]["instance_count"])]
    addrs += [f'google_storage_bucket.data["{b}"]' for b in sets["buckets"]]
    if p["flags"]["enable_extra"]:
        addrs.append("module.events[0].google_pubsub_topic.this")
        addrs += [f'module.events[0].google_pubsub_subscription.this["{s}"]' for s in n["subscriptions"]]
    return files, {".": dict.fromkeys(addrs, Inst())}
