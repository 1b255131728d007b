resource "aws_s3_bucket" "archive" {
  bucket = "tfpredict-archive"

  versioning {
    enabled = false
  }
}
