terraform {
  # startswith() and strcontains() in validations: Terraform 1.5.
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # termination_notification and scale_in.force_deletion_enabled: 3.x.
      version = ">= 3.60"
    }
  }
}
