package Cx

import data.generic.common as common_lib
import data.generic.terraform as tf_lib

# a single ingress block is an object
CxPolicy[result] {
	doc := input.document[i]
	sg := doc.resource.aws_security_group[name]
	rule := sg.ingress
	is_object(rule)
	tf_lib.port_in_range(rule, 22)
	tf_lib.open_to_internet(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_security_group",
		"resourceName": name,
		"searchKey": sprintf("aws_security_group[%s].ingress", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_security_group[%s].ingress does not open port 22 to the internet", [name]),
		"keyActualValue": sprintf("aws_security_group[%s].ingress opens port 22 to the internet", [name]),
	}
}

# repeated ingress blocks are a list
CxPolicy[result] {
	doc := input.document[i]
	sg := doc.resource.aws_security_group[name]
	rules := sg.ingress
	is_array(rules)
	rule := rules[idx]
	tf_lib.port_in_range(rule, 22)
	tf_lib.open_to_internet(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_security_group",
		"resourceName": name,
		"searchKey": sprintf("aws_security_group[%s].ingress[%d]", [name, idx]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_security_group[%s].ingress[%d] does not open port 22 to the internet", [name, idx]),
		"keyActualValue": sprintf("aws_security_group[%s].ingress[%d] opens port 22 to the internet", [name, idx]),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	rule := doc.resource.aws_security_group_rule[name]
	rule.type == "ingress"
	tf_lib.port_in_range(rule, 22)
	tf_lib.open_to_internet(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_security_group_rule",
		"resourceName": name,
		"searchKey": sprintf("aws_security_group_rule[%s].cidr_blocks", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_security_group_rule[%s] does not open port 22 to the internet", [name]),
		"keyActualValue": sprintf("aws_security_group_rule[%s] opens port 22 to the internet", [name]),
	}
}
