resource "aws_s3_bucket" "public" {
  bucket = "tfpredict-public-assets"
  acl    = "public-read"

  tags = {
    Team = "web"
  }
}
