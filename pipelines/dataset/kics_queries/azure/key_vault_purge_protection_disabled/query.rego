package Cx

import data.generic.common as common_lib

CxPolicy[result] {
	doc := input.document[i]
	vault := doc.resource.azurerm_key_vault[name]
	not common_lib.valid_key(vault, "purge_protection_enabled")

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_key_vault",
		"resourceName": name,
		"searchKey": sprintf("azurerm_key_vault[%s]", [name]),
		"issueType": "MissingAttribute",
		"keyExpectedValue": sprintf("azurerm_key_vault[%s].purge_protection_enabled is defined and true", [name]),
		"keyActualValue": sprintf("azurerm_key_vault[%s].purge_protection_enabled is undefined", [name]),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	vault := doc.resource.azurerm_key_vault[name]
	common_lib.is_false(vault.purge_protection_enabled)

	result := {
		"documentId": doc.id,
		"resourceType": "azurerm_key_vault",
		"resourceName": name,
		"searchKey": sprintf("azurerm_key_vault[%s].purge_protection_enabled", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("azurerm_key_vault[%s].purge_protection_enabled is true", [name]),
		"keyActualValue": sprintf("azurerm_key_vault[%s].purge_protection_enabled is false", [name]),
	}
}
