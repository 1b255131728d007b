package Cx

import data.generic.common as common_lib
import data.generic.terraform as tf_lib

rdp_open(rule) {
	lower(rule.access) == "allow"
	lower(rule.direction) == "inbound"
	tf_lib.rule_has_port(rule, 3389)
	tf_lib.rule_open_source(rule)
}

CxPolicy[result] {
	doc := input.document[i]
	rule := doc.resource.azurerm_network_security_rule[name]
	rdp_open(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_network_security_rule",
		"resourceName": name,
		"searchKey": sprintf("azurerm_network_security_rule[%s]", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("azurerm_network_security_rule[%s] does not allow RDP from the internet", [name]),
		"keyActualValue": sprintf("azurerm_network_security_rule[%s] allows RDP from the internet", [name]),
	}
}

# a single security_rule block is an object
CxPolicy[result] {
	doc := input.document[i]
	nsg := doc.resource.azurerm_network_security_group[name]
	rule := nsg.security_rule
	is_object(rule)
	rdp_open(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_network_security_group",
		"resourceName": name,
		"searchKey": sprintf("azurerm_network_security_group[%s].security_rule", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("azurerm_network_security_group[%s].security_rule does not allow RDP from the internet", [name]),
		"keyActualValue": sprintf("azurerm_network_security_group[%s].security_rule allows RDP from the internet", [name]),
	}
}

# repeated security_rule blocks are a list
CxPolicy[result] {
	doc := input.document[i]
	nsg := doc.resource.azurerm_network_security_group[name]
	rules := nsg.security_rule
	is_array(rules)
	rule := rules[idx]
	rdp_open(rule)

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_network_security_group",
		"resourceName": name,
		"searchKey": sprintf("azurerm_network_security_group[%s].security_rule[%d]", [name, idx]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("azurerm_network_security_group[%s].security_rule[%d] does not allow RDP from the internet", [name, idx]),
		"keyActualValue": sprintf("azurerm_network_security_group[%s].security_rule[%d] allows RDP from the internet", [name, idx]),
	}
}
