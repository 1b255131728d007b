resource "google_storage_bucket" "exports" {
  name                        = "tfpredict-exports"
  location                    = "EU"
  force_destroy               = true
  uniform_bucket_level_access = false
}
