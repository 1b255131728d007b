package Cx

import data.generic.common as common_lib

public_acls := {"public-read", "public-read-write", "authenticated-read"}

CxPolicy[result] {
	doc := input.document[i]
	bucket := doc.resource.aws_s3_bucket[name]
	public_acls[bucket.acl]

	result := {
		"documentId": doc.id,
		"resourceType": "aws_s3_bucket",
		"resourceName": name,
		"searchKey": sprintf("aws_s3_bucket[%s].acl", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_s3_bucket[%s].acl should be private", [name]),
		"keyActualValue": sprintf("aws_s3_bucket[%s].acl is %s", [name, bucket.acl]),
		"searchLine": common_lib.build_search_line(["resource", "aws_s3_bucket", name, "acl"], []),
	}
}

CxPolicy[result] {
	doc := input.document[i]
	acl := doc.resource.aws_s3_bucket_acl[name]
	public_acls[acl.acl]

	result := {
		"documentId": doc.id,
		"resourceType": "aws_s3_bucket_acl",
		"resourceName": name,
		"searchKey": sprintf("aws_s3_bucket_acl[%s].acl", [name]),
		"issueType": "IncorrectValue",
		"keyExpectedValue": sprintf("aws_s3_bucket_acl[%s].acl should be private", [name]),
		"keyActualValue": sprintf("aws_s3_bucket_acl[%s].acl is %s", [name, acl.acl]),
		"searchLine": common_lib.build_search_line(["resource", "aws_s3_bucket_acl", name, "acl"], []),
	}
}
