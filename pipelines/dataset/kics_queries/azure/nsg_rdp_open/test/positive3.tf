# a single inline rule
resource "azurerm_network_security_group" "jump" {
  name                = "nsg-jump"
  location            = "westeurope"
  resource_group_name = "rg-net"

  security_rule {
    name                       = "rdp-any"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "Internet"
    destination_address_prefix = "*"
  }
}
