package Cx

import data.generic.common as common_lib

# a single network_interface block is an object
CxPolicy[result] {
	doc := input.document[i]
	instance := doc.resource.google_compute_instance[name]
	nic := instance.network_interface
	is_object(nic)
	common_lib.valid_key(nic, "access_config")

	result := {
		"documentId": doc.id,
		"resourceType": "google_compute_instance",
		"resourceName": name,
		"searchKey": sprintf("google_compute_instance[%s].network_interface.access_config", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("google_compute_instance[%s].network_interface has no access_config", [name]),
		"keyActualValue": sprintf("google_compute_instance[%s].network_interface.access_config is defined", [name]),
	}
}

# repeated network_interface blocks are a list
CxPolicy[result] {
	doc := input.document[i]
	instance := doc.resource.google_compute_instance[name]
	nics := instance.network_interface
	is_array(nics)
	nic := nics[idx]
	common_lib.valid_key(nic, "access_config")

	result := {
		"documentId": doc.id,
		"resourceType": "google_compute_instance",
		"resourceName": name,
		"searchKey": sprintf("google_compute_instance[%s].network_interface[%d].access_config", [name, idx]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("google_compute_instance[%s].network_interface[%d] has no access_config", [name, idx]),
		"keyActualValue": sprintf("google_compute_instance[%s].network_interface[%d].access_config is defined", [name, idx]),
	}
}
