variable "name" {
  description = "Name of the scale set and of the identity this module creates; also the prefix of the instances' names (NAME_ID)."
  type        = string
  default     = "davit-workers"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,49}$", var.name))
    error_message = "name: 1 to 50 letters, digits and dashes, starting with a letter."
  }
}

variable "pool" {
  description = "The davit pool the workers join (as in `davit pool create NAME`); tagged on the scale set (davit-pool) for the autoscaler."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", var.pool))
    error_message = "pool: a davit pool name, 1 to 64 letters, digits, dots, dashes and underscores."
  }
}

variable "resource_group_name" {
  description = "Existing resource group of the scale set and its identity."
  type        = string

  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name)) && !endswith(var.resource_group_name, ".")
    error_message = "resource_group_name: 1 to 90 letters, digits, dashes, underscores, dots and parentheses, not ending with a dot."
  }
}

variable "location" {
  description = "Azure region of the workers, e.g. westeurope."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location: an Azure region name in lower case without spaces, e.g. westeurope."
  }
}

variable "key_vault_id" {
  description = "Resource id of the Key Vault that holds the token and the key. It must use Azure RBAC (enable_rbac_authorization = true): the instances' identity is given Key Vault Secrets User on the two secrets only."
  type        = string

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.KeyVault/vaults/[A-Za-z][A-Za-z0-9-]{2,23}$", var.key_vault_id))
    error_message = "key_vault_id: a Key Vault resource id, /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/NAME."
  }
}

variable "token_secret_name" {
  description = "Name of the Key Vault secret holding the pool token, as printed by `davit pool create`. Never the token itself: it is not put in custom data."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,127}$", var.token_secret_name))
    error_message = "token_secret_name: a Key Vault secret name, 1 to 127 letters, digits and dashes."
  }
}

variable "private_key_secret_name" {
  description = "Name of the Key Vault secret holding the pool's private key, the PEM as one line of base64 (`base64 -w 0 davit.key`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,127}$", var.private_key_secret_name))
    error_message = "private_key_secret_name: a Key Vault secret name, 1 to 127 letters, digits and dashes."
  }
}

variable "vm_size" {
  description = "VM size of the workers. Sizes with a p among their feature letters (Standard_D2ps_v5, Standard_B2pts_v2, Standard_E4pds_v6: Ampere and Cobalt) boot the arm64 image, all others the amd64 one, unless architecture says otherwise."
  type        = string
  default     = "Standard_D2s_v5"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_-]+$", var.vm_size))
    error_message = "vm_size: an Azure VM size such as Standard_D2s_v5 or Standard_D2ps_v5."
  }
}

variable "architecture" {
  description = "\"amd64\" or \"arm64\" to override the architecture derived from vm_size; empty to derive it."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "amd64", "arm64"], var.architecture)
    error_message = "architecture: \"\", \"amd64\" or \"arm64\"."
  }
}

variable "image_id" {
  description = "The machine image to boot (built from deploy/packer's azure-arm sources): a managed image, or a Compute Gallery image definition or version id (required for arm64 sizes, which boot only from gallery images). Empty (amd64 only): the newest managed image named image_name_prefix-amd64-* in image_resource_group."
  type        = string
  default     = ""

  validation {
    condition     = var.image_id == "" || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Compute/", var.image_id))
    error_message = "image_id: empty, or an image resource id (/subscriptions/.../providers/Microsoft.Compute/images/NAME or a gallery image version)."
  }
}

variable "image_name_prefix" {
  description = "Name prefix of the managed images deploy/packer builds (its ami_name_prefix variable), used when image_id is empty."
  type        = string
  default     = "davit-launcher-debian12"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{3,60}$", var.image_name_prefix))
    error_message = "image_name_prefix: 3 to 60 letters, digits, dots, dashes and underscores."
  }
}

variable "image_resource_group" {
  description = "Resource group of the managed images (deploy/packer's azure_resource_group), used when image_id is empty."
  type        = string
  default     = "davit-images"

  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.image_resource_group))
    error_message = "image_resource_group: a resource group name."
  }
}

variable "instances" {
  description = "Instances when the scale set is created. Afterwards the autoscaler sets the capacity; Terraform ignores changes to it."
  type        = number
  default     = 0

  validation {
    condition     = var.instances >= 0 && var.instances <= 1000 && floor(var.instances) == var.instances
    error_message = "instances: a whole number from 0 to 1000."
  }
}

variable "subnet_id" {
  description = "Subnet of the instances. It needs a route out to the davit server, the image registry and Key Vault (NAT gateway, or a private endpoint for the vault). No inbound rule is needed."
  type        = string

  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Network/virtualNetworks/[^/]+/subnets/[^/]+$", var.subnet_id))
    error_message = "subnet_id: a subnet resource id, /subscriptions/.../virtualNetworks/VNET/subnets/NAME."
  }
}

variable "admin_username" {
  description = "The instances' administrator (SSH keys only, no password)."
  type        = string
  default     = "davit"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["admin", "root", "administrator"], var.admin_username)
    error_message = "admin_username: a Linux user name, not admin, root or administrator (Azure refuses them)."
  }
}

variable "admin_ssh_public_key" {
  description = "OpenSSH public key of admin_username (Azure requires one for Linux scale sets; launchers need no inbound access)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp[0-9]+) [A-Za-z0-9+/=]+", var.admin_ssh_public_key))
    error_message = "admin_ssh_public_key: an OpenSSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...)."
  }
}

variable "os_disk_size_gb" {
  description = "Size of each instance's OS disk, which holds Docker's images and the runs' containers."
  type        = number
  default     = 64

  validation {
    condition     = var.os_disk_size_gb >= 30 && var.os_disk_size_gb <= 4095
    error_message = "os_disk_size_gb: 30 to 4095."
  }
}

variable "os_disk_type" {
  description = "Storage account type of the OS disk."
  type        = string
  default     = "StandardSSD_LRS"

  validation {
    condition     = contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS"], var.os_disk_type)
    error_message = "os_disk_type: Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS or Premium_ZRS."
  }
}

variable "zones" {
  description = "Availability zones to spread the instances over, e.g. [\"1\", \"2\", \"3\"]; empty for a regional (zoneless) scale set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.zones : contains(["1", "2", "3"], z)])
    error_message = "zones: a list of \"1\", \"2\" and \"3\"."
  }
}

variable "termination_timeout" {
  description = "How long Azure holds a deleted instance for its termination notification (Scheduled Events), as ISO 8601 PT5M to PT15M: the most a run in progress gets to finish when the scale set is scaled in by anything other than the davit autoscaler, which deletes idle workers only."
  type        = string
  default     = "PT15M"

  validation {
    condition     = can(regex("^PT([5-9]|1[0-5])M$", var.termination_timeout))
    error_message = "termination_timeout: PT5M to PT15M (Azure's limits for a scale set's termination notification)."
  }
}

variable "server_ca_pem" {
  description = "PEM of the CA that signed the davit server's certificate, when it is not publicly trusted; written to /etc/davit/server-ca.pem and given as DAVIT_CA_FILE. Empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.server_ca_pem == "" || (startswith(trimspace(var.server_ca_pem), "-----BEGIN CERTIFICATE-----") && !strcontains(var.server_ca_pem, "'"))
    error_message = "server_ca_pem: empty, or certificates in PEM (-----BEGIN CERTIFICATE-----)."
  }
}

variable "launcher_env" {
  description = "More launcher settings, written to /etc/davit/launcher.env (docs/configuration.md), e.g. { DAVIT_METADATA_team = \"web\" }. Never secrets: custom data is readable by anyone who may read the scale set's model."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k, v in var.launcher_env :
      can(regex("^(DAVIT|SPACELIFT)_[A-Za-z0-9_]+$", k)) && !can(regex("[\n\r]", v)) &&
    !contains(["DAVIT_TOKEN", "SPACELIFT_TOKEN", "DAVIT_POOL_PRIVATE_KEY", "SPACELIFT_POOL_PRIVATE_KEY"], k)])
    error_message = "launcher_env: DAVIT_ or SPACELIFT_ names with one-line values, and never the token or the private key (use the Key Vault secrets)."
  }
}

variable "tags" {
  description = "Tags for everything this module creates (the scale set also gets davit-pool = pool)."
  type        = map(string)
  default     = {}
}

variable "min_size" {
  description = "The autoscaler's --min (a scale set has no bounds of its own): the autoscaler_environment output gives it."
  type        = number
  default     = 0

  validation {
    condition     = var.min_size >= 0 && var.min_size <= 1000 && floor(var.min_size) == var.min_size
    error_message = "min_size: a whole number from 0 to 1000."
  }
}

variable "max_size" {
  description = "The autoscaler's --max: the autoscaler_environment output gives it."
  type        = number
  default     = 10

  validation {
    condition     = var.max_size >= 1 && var.max_size <= 1000 && floor(var.max_size) == var.max_size
    error_message = "max_size: a whole number from 1 to 1000."
  }
}

variable "autoscaler_principal_id" {
  description = "Principal (object) id of the identity `davit autoscale` runs as (the davit server host's managed identity): given, the autoscaler role is assigned to it on the scale set."
  type        = string
  default     = ""

  validation {
    condition     = var.autoscaler_principal_id == "" || can(regex("^[0-9a-fA-F-]{36}$", var.autoscaler_principal_id))
    error_message = "autoscaler_principal_id: an object id (a GUID), or empty."
  }
}
