resource "aws_s3_bucket" "logs" {
  bucket = "tfpredict-logs"
}

resource "aws_s3_bucket_acl" "logs" {
  bucket = aws_s3_bucket.logs.id
  acl    = "public-read-write"
}

resource "aws_s3_bucket" "shared" {
  bucket = "tfpredict-shared"
  acl    = "authenticated-read"
}
