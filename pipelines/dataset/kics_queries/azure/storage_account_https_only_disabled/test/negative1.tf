resource "azurerm_storage_account" "secure" {
  name                       = "tfpredictsecure"
  resource_group_name        = "rg-storage"
  location                   = "westeurope"
  account_tier               = "Standard"
  account_replication_type   = "LRS"
  https_traffic_only_enabled = true
}

resource "azurerm_storage_account" "default" {
  name                     = "tfpredictdefault"
  resource_group_name      = "rg-storage"
  location                 = "westeurope"
  account_tier             = "Standard"
  account_replication_type = "LRS"
}
