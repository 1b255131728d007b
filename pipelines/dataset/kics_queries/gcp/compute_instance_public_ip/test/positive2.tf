resource "google_compute_instance" "router" {
  name         = "router"
  machine_type = "e2-medium"
  zone         = "europe-west1-c"

  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
    }
  }

  network_interface {
    subnetwork = "internal"
  }

  network_interface {
    subnetwork = "edge"
    access_config {
      nat_ip = "203.0.113.10"
    }
  }
}
