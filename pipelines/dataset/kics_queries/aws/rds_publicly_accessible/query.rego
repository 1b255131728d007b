package Cx

import data.generic.common as common_lib

CxPolicy[result] {
	doc := input.document[i]
	db := doc.resource.aws_db_instance[name]
	common_lib.is_true(db.publicly_accessible)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_db_instance",
		"resourceName": name,
		"searchKey": sprintf("aws_db_instance[%s].publicly_accessible", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_db_instance[%s].publicly_accessible is false or undefined", [name]),
		"keyActualValue": sprintf("aws_db_instance[%s].publicly_accessible is true", [name]),
	}
}
