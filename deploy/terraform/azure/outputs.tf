output "scale_set_id" {
  description = "Resource id of the workers' scale set."
  value       = azurerm_linux_virtual_machine_scale_set.workers.id
}

output "scale_set_name" {
  description = "Name of the workers' scale set (the autoscaler's --scale-set)."
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

output "resource_group_name" {
  description = "The scale set's resource group (the autoscaler's --resource-group)."
  value       = var.resource_group_name
}

output "subscription_id" {
  description = "The scale set's subscription (the autoscaler's --subscription)."
  value       = local.subscription_id
}

output "autoscaler_role_definition_id" {
  description = "The autoscaler's custom role (docs/autoscale.md, \"Minimum Azure role\"), to assign to another identity than autoscaler_principal_id yourself."
  value       = azurerm_role_definition.autoscaler.role_definition_resource_id
}

output "autoscaler_environment" {
  description = "Lines for /etc/davit/autoscale.env (add DAVIT_SERVER and DAVIT_API_TOKEN)."
  value       = <<-EOT
    DAVIT_AUTOSCALE_PROVIDER=azure
    DAVIT_AUTOSCALE_POOL=${var.pool}
    DAVIT_AUTOSCALE_SCALE_SET=${azurerm_linux_virtual_machine_scale_set.workers.name}
    DAVIT_AUTOSCALE_SUBSCRIPTION=${local.subscription_id}
    DAVIT_AUTOSCALE_RESOURCE_GROUP=${var.resource_group_name}
    DAVIT_AUTOSCALE_MIN=${var.min_size}
    DAVIT_AUTOSCALE_MAX=${var.max_size}
    DAVIT_AUTOSCALE_EVERY=60s
  EOT
}
