resource "azurerm_storage_account" "legacy" {
  name                      = "tfpredictlegacy"
  resource_group_name       = "rg-storage"
  location                  = "westeurope"
  account_tier              = "Standard"
  account_replication_type  = "LRS"
  enable_https_traffic_only = false
}
