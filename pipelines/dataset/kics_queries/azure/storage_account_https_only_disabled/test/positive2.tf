resource "azurerm_storage_account" "current" {
  name                     = "tfpredictcurrent"
  resource_group_name      = "rg-storage"
  location                 = "westeurope"
  account_tier             = "Standard"
  account_replication_type = "GRS"

  https_traffic_only_enabled = false
  min_tls_version            = "TLS1_2"
}
