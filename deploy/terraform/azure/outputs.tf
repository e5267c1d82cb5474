output "scale_set_id" {
  description = "Resource id of the workers' scale set (the autoscaler's --group)."
  value       = azurerm_linux_virtual_machine_scale_set.workers.id
}

output "scale_set_name" {
  description = "Name of the workers' scale set."
  value       = azurerm_linux_virtual_machine_scale_set.workers.name
}

output "architecture" {
  description = "amd64 or arm64: the architecture of the image the instances boot."
  value       = local.arch
}

output "image_id" {
  description = "The image the instances boot."
  value       = local.image_id
}

output "identity_principal_id" {
  description = "Principal id of the instances' user-assigned identity (Key Vault Secrets User on the two secrets only)."
  value       = azurerm_user_assigned_identity.workers.principal_id
}

output "identity_client_id" {
  description = "Client id of the instances' identity, as the custom data gives it to the boot script (DAVIT_AZURE_CLIENT_ID)."
  value       = azurerm_user_assigned_identity.workers.client_id
}
