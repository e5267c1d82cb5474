# A pool "web" on an autoscaling group of 0 to 6 Graviton instances.
#
# Before `terraform apply` (docs/deploy-aws.md):
#   packer build deploy/packer                       # the image
#   davit pool create web                            # prints the token, writes davit.key
#   aws ssm put-parameter --type SecureString --name /davit/web/token --value "$TOKEN"
#   aws ssm put-parameter --type SecureString --name /davit/web/private-key \
#       --value "$(base64 -w 0 davit.key)"
# The secrets stay out of Terraform: only their names are here.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region of the workers."
  type        = string
  default     = "eu-west-1"
}

variable "subnet_ids" {
  description = "Private subnets with a route to the davit server and to SSM."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the workers (outbound only)."
  type        = list(string)
}

variable "autoscaler_role_name" {
  description = "The IAM role of the davit server's host, which runs davit autoscale; empty to attach the policy yourself."
  type        = string
  default     = ""
}

module "davit_pool" {
  source = "../.."

  name                 = "davit-web"
  pool                 = "web"
  token_from           = "ssm:/davit/web/token"
  private_key_from     = "ssm:/davit/web/private-key"
  instance_type        = "m7g.large"
  min_size             = 0
  max_size             = 6
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  autoscaler_role_name = var.autoscaler_role_name

  launcher_env = {
    DAVIT_METADATA_team = "web"
  }
  tags = {
    team = "web"
  }
}

output "autoscaler_environment" {
  description = "Put these in /etc/davit/autoscale.env on the server host."
  value       = module.davit_pool.autoscaler_environment
}

output "autoscaling_group_name" {
  description = "The workers' group."
  value       = module.davit_pool.autoscaling_group_name
}
