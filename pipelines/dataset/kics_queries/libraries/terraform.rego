# Terraform helpers for tfpredict's KICS-style queries (package generic.terraform, imported as tf_lib).
# Written for this project in the Rego subset regopy (rego-cpp) evaluates.
package generic.terraform

import data.generic.common as common_lib

# resources(doc, type): {name: body} of the document's resources of that type ({} when none).
resources(doc, type) = found {
	found := doc.resource[type]
} else = {}

# port_in_range(rule, port): the rule's from_port..to_port range covers port (-1/"-1" and 0..0 mean all).
port_in_range(rule, port) {
	to_number(rule.from_port) <= port
	to_number(rule.to_port) >= port
}

port_in_range(rule, port) {
	to_number(rule.from_port) == 0
	to_number(rule.to_port) == 0
}

port_in_range(rule, port) {
	to_number(rule.from_port) == -1
}

# open_to_internet(rule): an ingress/egress rule lists an unrestricted IPv4 or IPv6 CIDR.
open_to_internet(rule) {
	cidr := rule.cidr_blocks[_]
	common_lib.is_unrestricted(cidr)
}

open_to_internet(rule) {
	cidr := rule.ipv6_cidr_blocks[_]
	common_lib.is_unrestricted(cidr)
}

# port_matches(range, port): an Azure port range ("22", "20-30", "*") includes port.
port_matches(range, port) {
	range == "*"
}

port_matches(range, port) {
	not contains(range, "-")
	range != "*"
	to_number(range) == port
}

port_matches(range, port) {
	parts := split(range, "-")
	count(parts) == 2
	to_number(parts[0]) <= port
	to_number(parts[1]) >= port
}

# rule_has_port(rule, port): an Azure security rule's destination port(s) include port.
rule_has_port(rule, port) {
	port_matches(rule.destination_port_range, port)
}

rule_has_port(rule, port) {
	range := rule.destination_port_ranges[_]
	port_matches(range, port)
}

# rule_open_source(rule): an Azure security rule allows any source address.
rule_open_source(rule) {
	common_lib.is_unrestricted(rule.source_address_prefix)
}

rule_open_source(rule) {
	prefix := rule.source_address_prefixes[_]
	common_lib.is_unrestricted(prefix)
}

# get_resource_name(resource, label): the resource's name attribute, else its Name tag, else its label.
get_resource_name(resource, label) = name {
	name := resource.name
} else = name {
	name := resource.tags.Name
} else = label

# the attribute that names a resource of a given type, where it is not `name`
name_attributes := {
	"aws_s3_bucket": "bucket",
	"aws_db_instance": "identifier",
	"aws_security_group": "name",
}

# get_specific_resource_name(resource, type, label): the type's naming attribute, else get_resource_name.
get_specific_resource_name(resource, type, label) = name {
	name := resource[name_attributes[type]]
} else = name {
	name := get_resource_name(resource, label)
}
