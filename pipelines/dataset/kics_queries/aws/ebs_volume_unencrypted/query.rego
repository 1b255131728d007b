package Cx

import data.generic.common as common_lib

CxPolicy[result] {
	doc := input.document[i]
	volume := doc.resource.aws_ebs_volume[name]
	not common_lib.valid_key(volume, "encrypted")

	result := {
		"documentId": doc.id,
		"resourceType": "aws_ebs_volume",
		"resourceName": name,
		"searchKey": sprintf("aws_ebs_volume[%s]", [name]),
		"issueType": "MissingAttribute",
		"keyExpectedValue": sprintf("aws_ebs_volume[%s].encrypted is defined and true", [name]),
		"keyActualValue": sprintf("aws_ebs_volume[%s].encrypted is undefined", [name]),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	volume := doc.resource.aws_ebs_volume[name]
	common_lib.is_false(volume.encrypted)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_ebs_volume",
		"resourceName": name,
		"searchKey": sprintf("aws_ebs_volume[%s].encrypted", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_ebs_volume[%s].encrypted is true", [name]),
		"keyActualValue": sprintf("aws_ebs_volume[%s].encrypted is false", [name]),
		"searchLine": common_lib.build_search_line(["resource", "aws_ebs_volume", name, "encrypted"], []),
	}
}
