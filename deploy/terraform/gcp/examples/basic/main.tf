# A pool "web" on a regional managed instance group of T2A (Arm) instances.
#
# Before `terraform apply` (docs/deploy-gcp.md):
#   packer build -only='googlecompute.arm64' -var gcp_project_id=$PROJECT deploy/packer
#   davit pool create web                            # prints the token, writes davit.key
#   gcloud secrets create davit-web-token --data-file=token.txt
#   base64 -w 0 davit.key | gcloud secrets create davit-web-key --data-file=-
# The secrets stay out of Terraform: only their names are here.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

variable "project_id" {
  description = "Project of the workers, their images and the secrets."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork with Cloud NAT (or Private Google Access) in europe-west4."
  type        = string
}

provider "google" {
  project = var.project_id
  region  = "europe-west4"
}

module "davit_pool" {
  source = "../.."

  name               = "davit-web"
  pool               = "web"
  project_id         = var.project_id
  region             = "europe-west4"
  zones              = ["europe-west4-a", "europe-west4-b"]
  token_secret       = "davit-web-token"
  private_key_secret = "davit-web-key"
  machine_type       = "t2a-standard-2"
  subnetwork         = var.subnetwork

  launcher_env = {
    DAVIT_METADATA_team = "web"
  }
  labels = {
    team = "web"
  }
}

output "instance_group_manager" {
  description = "The workers' group."
  value       = module.davit_pool.instance_group_manager
}
