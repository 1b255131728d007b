package Cx

import data.generic.common as common_lib

CxPolicy[result] {
	doc := input.document[i]
	cluster := doc.resource.google_container_cluster[name]
	common_lib.is_true(cluster.enable_legacy_abac)

	result := {
		"documentId": doc.id,
		"resourceType": "google_container_cluster",
		"resourceName": name,
		"searchKey": sprintf("google_container_cluster[%s].enable_legacy_abac", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("google_container_cluster[%s].enable_legacy_abac is false or undefined", [name]),
		"keyActualValue": sprintf("google_container_cluster[%s].enable_legacy_abac is true", [name]),
	}
}
