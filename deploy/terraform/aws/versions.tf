terraform {
  # startswith() and strcontains() in validations: Terraform 1.5.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # data.aws_region's id in both majors (its name is deprecated in 6).
      version = ">= 5.0, < 7.0"
    }
  }
}
