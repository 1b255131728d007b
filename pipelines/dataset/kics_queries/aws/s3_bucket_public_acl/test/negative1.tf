resource "aws_s3_bucket" "private" {
  bucket = "tfpredict-private"
  acl    = "private"
}

resource "aws_s3_bucket" "default_acl" {
  bucket = "tfpredict-default"
}

resource "aws_s3_bucket_acl" "default_acl" {
  bucket = aws_s3_bucket.default_acl.id
  acl    = "log-delivery-write"
}
