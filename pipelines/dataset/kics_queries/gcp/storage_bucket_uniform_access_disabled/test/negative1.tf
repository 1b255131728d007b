resource "google_storage_bucket" "exports" {
  name                        = "tfpredict-exports"
  location                    = "EU"
  uniform_bucket_level_access = true
}
