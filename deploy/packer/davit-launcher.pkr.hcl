# The davit worker machine image: Debian 12, Docker, the launcher's boot
# script and systemd units (not enabled: the Terraform module's user data,
# custom data or startup script writes /etc/davit/launcher.env and starts
# them), optionally gVisor. One image per cloud and architecture, all from
# the same provisioning scripts (scripts/); each Terraform module
# (deploy/terraform/aws, azure, gcp) picks the one matching the machine type.
#
#   packer build -only='amazon-ebs.*' -var region=eu-west-1 deploy/packer
#   packer build -only=amazon-ebs.arm64 -var install_gvisor=true deploy/packer
#   packer build -only='azure-arm.*' -var azure_subscription_id=... \
#       -var azure_resource_group=davit-images deploy/packer
#   packer build -only='googlecompute.*' -var gcp_project_id=my-project deploy/packer
#
# Written for Packer 1.6 (Debian 12's), whose amazon-ebs, azure-arm and
# googlecompute builders are built in: no required_plugins block, which it
# would reject.

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

variable "azure_subscription_id" {
  type        = string
  default     = ""
  description = "Azure: subscription to build in. Credentials: the Azure CLI's login (use_azure_cli_auth) or a managed identity."
}

variable "azure_resource_group" {
  type        = string
  default     = "davit-images"
  description = "Azure: existing resource group the managed images are written to (deploy/terraform/azure's image_resource_group)."
}

variable "azure_location" {
  type        = string
  default     = "westeurope"
  description = "Azure: region to build in."
}

variable "azure_vm_size_amd64" {
  type        = string
  default     = "Standard_B2s"
  description = "Azure: VM size that builds the amd64 image."
}

variable "azure_vm_size_arm64" {
  type        = string
  default     = "Standard_D2ps_v5"
  description = "Azure: VM size that builds the arm64 image (an Ampere Altra size, with p in its name)."
}

variable "azure_gallery_name" {
  type        = string
  default     = "davit_images"
  description = "Azure: existing Compute Gallery (in azure_resource_group) the arm64 image is published to: Arm64 VMs boot only from gallery or Marketplace images. It needs an image definition PREFIX-arm64 created with --architecture Arm64 --hyper-v-generation V2."
}

variable "azure_image_version" {
  type        = string
  default     = "1.0.0"
  description = "Azure: version (MAJOR.MINOR.PATCH) of the arm64 gallery image this build publishes."
}

variable "gcp_project_id" {
  type        = string
  default     = "davit-images"
  description = "GCP: project to build in and to keep the images in. Credentials: Application Default Credentials."
}

variable "gcp_zone" {
  type        = string
  default     = "europe-west4-a"
  description = "GCP: zone of the build instance (T2A, for arm64, is in a few regions only: us-central1, europe-west4, asia-southeast1)."
}

locals {
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    "davit:image" = "launcher"
    "os"          = "debian-12"
  }
  # GCP labels: lower case, no colon.
  labels = {
    "davit-image" = "launcher"
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

# Azure: Debian's own images (publisher Debian, offer debian-12), as managed
# images NAME_PREFIX-ARCH-TIMESTAMP in azure_resource_group.
source "azure-arm" "amd64" {
  use_azure_cli_auth                = true
  subscription_id                   = var.azure_subscription_id
  location                          = var.azure_location
  vm_size                           = var.azure_vm_size_amd64
  os_type                           = "Linux"
  image_publisher                   = "Debian"
  image_offer                       = "debian-12"
  image_sku                         = "12-gen2"
  managed_image_name                = "${var.ami_name_prefix}-amd64-${local.timestamp}"
  managed_image_resource_group_name = var.azure_resource_group
  azure_tags                        = local.tags
}

source "azure-arm" "arm64" {
  use_azure_cli_auth                = true
  subscription_id                   = var.azure_subscription_id
  location                          = var.azure_location
  vm_size                           = var.azure_vm_size_arm64
  os_type                           = "Linux"
  image_publisher                   = "Debian"
  image_offer                       = "debian-12"
  image_sku                         = "12-arm64"
  managed_image_name                = "${var.ami_name_prefix}-arm64-${local.timestamp}"
  managed_image_resource_group_name = var.azure_resource_group
  azure_tags                        = local.tags
  shared_image_gallery_destination {
    resource_group      = var.azure_resource_group
    gallery_name        = var.azure_gallery_name
    image_name          = "${var.ami_name_prefix}-arm64"
    image_version       = var.azure_image_version
    replication_regions = [var.azure_location]
  }
}

# GCP: Debian's own image families in debian-cloud, as images
# NAME_PREFIX-ARCH-TIMESTAMP in the families NAME_PREFIX-ARCH, which
# deploy/terraform/gcp looks up (its image_family_prefix).
source "googlecompute" "amd64" {
  project_id              = var.gcp_project_id
  zone                    = var.gcp_zone
  machine_type            = "e2-small"
  source_image_family     = "debian-12"
  source_image_project_id = ["debian-cloud"]
  ssh_username            = "packer"
  image_name              = "${var.ami_name_prefix}-amd64-${local.timestamp}"
  image_family            = "${var.ami_name_prefix}-amd64"
  image_labels            = local.labels
}

source "googlecompute" "arm64" {
  project_id              = var.gcp_project_id
  zone                    = var.gcp_zone
  machine_type            = "t2a-standard-1"
  source_image_family     = "debian-12-arm64"
  source_image_project_id = ["debian-cloud"]
  ssh_username            = "packer"
  image_name              = "${var.ami_name_prefix}-arm64-${local.timestamp}"
  image_family            = "${var.ami_name_prefix}-arm64"
  image_labels            = local.labels
}

build {
  sources = [
    "source.amazon-ebs.amd64", "source.amazon-ebs.arm64",
    "source.azure-arm.amd64", "source.azure-arm.arm64",
    "source.googlecompute.amd64", "source.googlecompute.arm64",
  ]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/davit"]
  }

  provisioner "file" {
    sources = [
      "${path.root}/../boot/davit-launcher-boot",
      "${path.root}/../boot/davit-boot-aws",
      "${path.root}/../boot/davit-boot-azure",
      "${path.root}/../boot/davit-boot-gcp",
      "${path.root}/../boot/davit-azure-drain",
      "${path.root}/../systemd/davit-azure-drain.service",
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

  # Azure's images are generalized by its agent as the last step.
  provisioner "shell" {
    only            = ["azure-arm.amd64", "azure-arm.arm64"]
    execute_command = "sudo -E sh '{{ .Path }}'"
    inline          = ["/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync"]
  }
}
