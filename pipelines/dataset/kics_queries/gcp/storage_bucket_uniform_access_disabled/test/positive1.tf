resource "google_storage_bucket" "static" {
  name     = "tfpredict-static"
  location = "EU"

  website {
    main_page_suffix = "index.html"
  }
}
