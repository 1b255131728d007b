package Cx

import data.generic.common as common_lib

CxPolicy[result] {
	doc := input.document[i]
	bucket := doc.resource.google_storage_bucket[name]
	not common_lib.valid_key(bucket, "uniform_bucket_level_access")

	result := {
		"documentId": doc.id,
		"resourceType": "google_storage_bucket",
		"resourceName": name,
		"searchKey": sprintf("google_storage_bucket[%s]", [name]),
		"issueType": "MissingAttribute",
		"keyExpectedValue": sprintf("google_storage_bucket[%s].uniform_bucket_level_access is defined and true", [name]),
		"keyActualValue": sprintf("google_storage_bucket[%s].uniform_bucket_level_access is undefined", [name]),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	bucket := doc.resource.google_storage_bucket[name]
	common_lib.is_false(bucket.uniform_bucket_level_access)

	result := {
		"documentId": doc.id,
		"resourceType": "google_storage_bucket",
		"resourceName": name,
		"searchKey": sprintf("google_storage_bucket[%s].uniform_bucket_level_access", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("google_storage_bucket[%s].uniform_bucket_level_access is true", [name]),
		"keyActualValue": sprintf("google_storage_bucket[%s].uniform_bucket_level_access is false", [name]),
		"searchLine": common_lib.build_search_line(["resource", "google_storage_bucket", name, "uniform_bucket_level_access"], []),
	}
}
