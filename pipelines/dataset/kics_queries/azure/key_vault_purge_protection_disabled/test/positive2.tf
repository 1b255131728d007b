resource "azurerm_key_vault" "ci" {
  name                       = "kv-tfpredict-ci"
  location                   = "westeurope"
  resource_group_name        = "rg-security"
  tenant_id                  = "00000000-0000-0000-0000-000000000000"
  sku_name                   = "premium"
  soft_delete_retention_days = 7
  purge_protection_enabled   = false
}
