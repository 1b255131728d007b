package Cx

import data.generic.common as common_lib

https_attributes := ["enable_https_traffic_only", "https_traffic_only_enabled"]

CxPolicy[result] {
	doc := input.document[i]
	account := doc.resource.azurerm_storage_account[name]
	attr := https_attributes[_]
	common_lib.is_false(account[attr])

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_storage_account",
		"resourceName": name,
		"searchKey": sprintf("azurerm_storage_account[%s].%s", [name, attr]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("azurerm_storage_account[%s].%s is true", [name, attr]),
		"keyActualValue": sprintf("azurerm_storage_account[%s].%s is false", [name, attr]),
	}
}
