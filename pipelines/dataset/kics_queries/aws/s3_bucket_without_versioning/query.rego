package Cx

import data.generic.common as common_lib

# an aws_s3_bucket_versioning resource in the same document enables versioning for the bucket
versioned_by_resource(doc, name) {
	v := doc.resource.aws_s3_bucket_versioning[_]
	contains(v.bucket, sprintf("aws_s3_bucket.%s.", [name]))
	v.versioning_configuration.status == "Enabled"
}

CxPolicy[result] {
	doc := input.document[i]
	bucket := doc.resource.aws_s3_bucket[name]
	not common_lib.valid_key(bucket, "versioning")
	not versioned_by_resource(doc, name)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_s3_bucket",
		"resourceName": name,
		"searchKey": sprintf("aws_s3_bucket[%s]", [name]),
		"issueType": "MissingAttribute",
		"keyExpectedValue": sprintf("aws_s3_bucket[%s] has versioning enabled", [name]),
		"keyActualValue": sprintf("aws_s3_bucket[%s] has no versioning", [name]),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	bucket := doc.resource.aws_s3_bucket[name]
	common_lib.is_false(bucket.versioning.enabled)

	result := {
		"documentId": doc.id,
		"resourceType": "aws_s3_bucket",
		"resourceName": name,
		"searchKey": sprintf("aws_s3_bucket[%s].versioning.enabled", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_s3_bucket[%s].versioning.enabled is true", [name]),
		"keyActualValue": sprintf("aws_s3_bucket[%s].versioning.enabled is false", [name]),
	}
}
