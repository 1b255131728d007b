resource "aws_ebs_volume" "logs" {
  availability_zone = "us-east-1b"
  size              = 100
  encrypted         = false

  tags = {
    Name = "logs"
  }
}
