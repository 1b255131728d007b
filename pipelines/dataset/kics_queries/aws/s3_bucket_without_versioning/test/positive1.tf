resource "aws_s3_bucket" "data" {
  bucket = "tfpredict-data"
}
