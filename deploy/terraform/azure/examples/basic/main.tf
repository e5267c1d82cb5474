# A pool "web" on a scale set of Arm (Ampere) instances.
#
# Before `terraform apply` (docs/deploy-azure.md):
#   az sig create -g davit-images -r davit_images
#   az sig image-definition create -g davit-images -r davit_images \
#       -i davit-launcher-debian12-arm64 --os-type Linux --architecture Arm64 \
#       --hyper-v-generation V2 -p davit -f davit-launcher -s debian12-arm64
#   packer build -only='azure-arm.arm64' -var azure_subscription_id=$SUB deploy/packer
#   davit pool create web                            # prints the token, writes davit.key
#   az keyvault secret set --vault-name davit-secrets --name davit-web-token --file token.txt
#   base64 -w 0 davit.key >key.b64
#   az keyvault secret set --vault-name davit-secrets --name davit-web-key --file key.b64
# The secrets stay out of Terraform: only their names are here.

terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 3.60"
    }
  }
}

provider "azurerm" {
  features {}
}

variable "resource_group_name" {
  description = "Existing resource group of the workers."
  type        = string
}

variable "key_vault_id" {
  description = "Resource id of the Key Vault (RBAC mode) holding the two secrets."
  type        = string
}

variable "subnet_id" {
  description = "Subnet with a route out to the davit server and Key Vault."
  type        = string
}

variable "image_id" {
  description = "The gallery image definition Packer published the arm64 image to (its newest version boots)."
  type        = string
}

variable "admin_ssh_public_key" {
  description = "OpenSSH public key for the instances' administrator."
  type        = string
}

module "davit_pool" {
  source = "../.."

  name                    = "davit-web"
  pool                    = "web"
  resource_group_name     = var.resource_group_name
  location                = "westeurope"
  key_vault_id            = var.key_vault_id
  token_secret_name       = "davit-web-token"
  private_key_secret_name = "davit-web-key"
  vm_size                 = "Standard_D2ps_v5"
  image_id                = var.image_id
  zones                   = ["1", "2", "3"]
  subnet_id               = var.subnet_id
  admin_ssh_public_key    = var.admin_ssh_public_key

  launcher_env = {
    DAVIT_METADATA_team = "web"
  }
  tags = {
    team = "web"
  }
}

output "scale_set_id" {
  description = "The workers' scale set."
  value       = module.davit_pool.scale_set_id
}
