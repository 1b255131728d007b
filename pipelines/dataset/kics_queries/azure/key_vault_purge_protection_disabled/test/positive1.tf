data "azurerm_client_config" "current" {}

resource "azurerm_key_vault" "app" {
  name                = "kv-tfpredict-app"
  location            = "westeurope"
  resource_group_name = "rg-security"
  tenant_id           = data.azurerm_client_config.current.tenant_id
  sku_name            = "standard"
}
