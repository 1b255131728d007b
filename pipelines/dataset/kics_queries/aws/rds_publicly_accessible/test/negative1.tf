resource "aws_db_instance" "private" {
  identifier          = "private"
  engine              = "postgres"
  instance_class      = "db.t3.micro"
  allocated_storage   = 20
  publicly_accessible = false
}

resource "aws_db_instance" "default" {
  identifier        = "default"
  engine            = "mysql"
  instance_class    = "db.t3.micro"
  allocated_storage = 20
}
