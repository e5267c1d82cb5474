# A pool of davit workers on an Azure Virtual Machine Scale Set (Uniform
# orchestration) of Debian 12 machines from deploy/packer's azure-arm image.
# The custom data holds no secret: each instance reads the pool token and
# key from Key Vault with the scale set's user-assigned identity
# (deploy/boot/davit-boot-azure), which may read those two secrets and
# nothing else. Scale-in waits for runs: the termination notification gives
# deploy/boot/davit-azure-drain termination_timeout to drain the launcher
# before the instance goes (docs/deploy-azure.md).

locals {
  # Azure size names: Standard_<family><vCPUs>[-<constrained>]<features>[_...];
  # a p among the feature letters is an Arm (Ampere, Cobalt) size.
  derived_arch = can(regex("^Standard_[A-Z]+[0-9]+(-[0-9]+)?[a-oq-z]*p[a-z]*(_|$)", var.vm_size)) ? "arm64" : "amd64"
  arch         = var.architecture != "" ? var.architecture : local.derived_arch
  # Arm64 VMs boot only from gallery (or Marketplace) images, which the
  # managed-image lookup cannot find: image_id is required for them.
  image_id = var.image_id != "" ? var.image_id : (local.arch == "amd64" ? data.azurerm_image.launcher[0].id : "")

  # /subscriptions/SUB/resourceGroups/RG/providers/…: the autoscaler's
  # --subscription and the scope of its role.
  scale_set_path    = split("/", azurerm_linux_virtual_machine_scale_set.workers.id)
  subscription_id   = local.scale_set_path[2]
  resource_group_id = join("/", slice(local.scale_set_path, 0, 5))

  vault_name   = regex("/vaults/([^/]+)$", var.key_vault_id)[0]
  secret_names = toset([var.token_secret_name, var.private_key_secret_name])

  env_lines = [for k in sort(keys(var.launcher_env)) : "${k}=${var.launcher_env[k]}"]
  custom_data = templatefile("${path.module}/templates/custom-data.sh.tftpl", {
    token_from       = "azure-keyvault:${local.vault_name}/${var.token_secret_name}"
    private_key_from = "azure-keyvault:${local.vault_name}/${var.private_key_secret_name}"
    client_id        = azurerm_user_assigned_identity.workers.client_id
    server_ca_pem    = var.server_ca_pem
    extra_env        = join("\n", local.env_lines)
  })
}

data "azurerm_image" "launcher" {
  count               = var.image_id == "" && local.arch == "amd64" ? 1 : 0
  name_regex          = "^${var.image_name_prefix}-${local.arch}-"
  sort_descending     = true
  resource_group_name = var.image_resource_group
}

# Created before the scale set, with its grants, so that the first boot can
# already read the secrets (a system-assigned identity would exist only with
# the scale set, racing its role assignments).
resource "azurerm_user_assigned_identity" "workers" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

# Key Vault Secrets User (read a secret's value) on each of the two secrets,
# not on the vault: the workers can read nothing else.
resource "azurerm_role_assignment" "secrets" {
  for_each             = local.secret_names
  scope                = "${var.key_vault_id}/secrets/${each.value}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.workers.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_linux_virtual_machine_scale_set" "workers" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = var.vm_size
  instances           = var.instances
  zones               = length(var.zones) > 0 ? var.zones : null
  source_image_id     = local.image_id
  custom_data         = base64encode(local.custom_data)

  admin_username                  = var.admin_username
  disable_password_authentication = true
  admin_ssh_key {
    username   = var.admin_username
    public_key = var.admin_ssh_public_key
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.workers.id]
  }

  # Overprovisioning boots extra instances and deletes them once enough are
  # up: each would register as a worker and vanish. Never for davit.
  overprovision = false
  # Model changes reach instances only when they are replaced (a pool
  # cycle, a scale-in and out): an upgrade never restarts a busy worker.
  upgrade_mode = "Manual"

  scale_in {
    rule                   = "Default"
    force_deletion_enabled = false
  }

  termination_notification {
    enabled = true
    timeout = var.termination_timeout
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = var.os_disk_type
    disk_size_gb         = var.os_disk_size_gb
  }

  network_interface {
    name    = "${var.name}-nic"
    primary = true
    ip_configuration {
      name      = "internal"
      primary   = true
      subnet_id = var.subnet_id
    }
  }

  tags = merge(var.tags, { "davit-pool" = var.pool })

  lifecycle {
    # The autoscaler owns the capacity.
    ignore_changes = [instances]
    precondition {
      condition     = local.image_id != ""
      error_message = "An arm64 vm_size boots from a Compute Gallery image: set image_id to the gallery image definition (or version) deploy/packer published (docs/deploy-azure.md)."
    }
  }

  depends_on = [azurerm_role_assignment.secrets]
}

# The autoscaler's least privilege (docs/autoscale.md, "Minimum Azure role"):
# exactly the calls `davit autoscale --provider azure` makes. A custom role is
# assignable at a resource group at the narrowest; it is assigned at the scale
# set only, to the identity given (the davit server host's).
resource "azurerm_role_definition" "autoscaler" {
  name              = "${var.name}-davit-autoscaler"
  scope             = local.resource_group_id
  description       = "davit autoscale: reads the scale set ${var.name}, sets its capacity, deletes chosen instances."
  assignable_scopes = [local.resource_group_id]

  permissions {
    actions = [
      "Microsoft.Compute/virtualMachineScaleSets/read",
      "Microsoft.Compute/virtualMachineScaleSets/write",
      "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
      "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    ]
  }
}

resource "azurerm_role_assignment" "autoscaler" {
  count              = var.autoscaler_principal_id != "" ? 1 : 0
  scope              = azurerm_linux_virtual_machine_scale_set.workers.id
  role_definition_id = azurerm_role_definition.autoscaler.role_definition_resource_id
  principal_id       = var.autoscaler_principal_id
}
