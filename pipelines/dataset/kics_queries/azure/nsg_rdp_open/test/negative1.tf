resource "azurerm_network_security_rule" "rdp_vpn" {
  name                        = "allow-rdp-vpn"
  priority                    = 100
  direction                   = "Inbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "3389"
  source_address_prefix       = "10.8.0.0/16"
  destination_address_prefix  = "*"
  resource_group_name         = "rg-net"
  network_security_group_name = "nsg-app"
}

resource "azurerm_network_security_rule" "deny_rdp" {
  name                        = "deny-rdp"
  priority                    = 200
  direction                   = "Inbound"
  access                      = "Deny"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "3389"
  source_address_prefix       = "*"
  destination_address_prefix  = "*"
  resource_group_name         = "rg-net"
  network_security_group_name = "nsg-app"
}
