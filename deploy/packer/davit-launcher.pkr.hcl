# The davit worker machine image: Debian 12, Docker, the launcher's boot
# script and systemd unit (not enabled: the Terraform module's user data
# writes /etc/davit/launcher.env and starts it), optionally gVisor. One image
# per architecture; deploy/terraform/aws picks the one matching the instance
# type.
#
#   packer build -var region=eu-west-1 deploy/packer
#   packer build -only=amazon-ebs.arm64 -var install_gvisor=true deploy/packer
#
# Written for Packer 1.6 (Debian 12's), whose amazon-ebs builder is built in:
# no required_plugins block, which it would reject.

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "Region to build in and to register the images in."
}

variable "ami_name_prefix" {
  type        = string
  default     = "davit-launcher-debian12"
  description = "Images are named PREFIX-ARCH-TIMESTAMP; the Terraform module looks them up by it (its ami_name_prefix)."
}

variable "install_gvisor" {
  type        = bool
  default     = false
  description = "Install gVisor (Debian's runsc) and register it as the Docker runtime \"runsc\", for DAVIT_WORKER_RUNTIME=runsc."
}

variable "instance_type_amd64" {
  type        = string
  default     = "t3.small"
  description = "Instance type that builds the amd64 image."
}

variable "instance_type_arm64" {
  type        = string
  default     = "t4g.small"
  description = "Instance type that builds the arm64 image (a Graviton type)."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty for the default VPC's."
}

variable "debian_owner" {
  type        = string
  default     = "136693071363"
  description = "Account that publishes Debian's official images."
}

locals {
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    "davit:image" = "launcher"
    "os"          = "debian-12"
  }
}

source "amazon-ebs" "amd64" {
  region        = var.region
  instance_type = var.instance_type_amd64
  subnet_id     = var.subnet_id
  ssh_username  = "admin"
  ami_name      = "${var.ami_name_prefix}-amd64-${local.timestamp}"
  tags          = local.tags
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.debian_owner]
    most_recent = true
  }
}

source "amazon-ebs" "arm64" {
  region        = var.region
  instance_type = var.instance_type_arm64
  subnet_id     = var.subnet_id
  ssh_username  = "admin"
  ami_name      = "${var.ami_name_prefix}-arm64-${local.timestamp}"
  tags          = local.tags
  source_ami_filter {
    filters = {
      name                = "debian-12-arm64-*"
      architecture        = "arm64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.debian_owner]
    most_recent = true
  }
}

build {
  sources = ["source.amazon-ebs.amd64", "source.amazon-ebs.arm64"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/davit"]
  }

  provisioner "file" {
    sources = [
      "${path.root}/../boot/davit-launcher-boot",
      "${path.root}/../boot/davit-boot-aws",
      "${path.root}/../systemd/davit-launcher.service",
      "${path.root}/../systemd/poweroff-on-cycle.conf",
      "${path.root}/scripts/install-davit-boot",
    ]
    destination = "/tmp/davit/"
  }

  provisioner "shell" {
    execute_command  = "sudo -E sh '{{ .Path }}'"
    environment_vars = ["DAVIT_INSTALL_GVISOR=${var.install_gvisor}"]
    script           = "${path.root}/scripts/provision"
  }
}
