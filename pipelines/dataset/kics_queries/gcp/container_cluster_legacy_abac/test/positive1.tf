resource "google_container_cluster" "primary" {
  name               = "primary"
  location           = "europe-west1"
  initial_node_count = 3

  # kept for an old deployment tool
  enable_legacy_abac = true
}
