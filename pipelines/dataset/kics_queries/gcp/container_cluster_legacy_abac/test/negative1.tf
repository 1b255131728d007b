resource "google_container_cluster" "primary" {
  name               = "primary"
  location           = "europe-west1"
  initial_node_count = 3
  enable_legacy_abac = false
}

resource "google_container_cluster" "secondary" {
  name               = "secondary"
  location           = "europe-west4"
  initial_node_count = 1
}
