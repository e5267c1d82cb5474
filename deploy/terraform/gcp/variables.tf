variable "name" {
  description = "Name of the managed instance group, its instance template (as a prefix) and service account; instances are named NAME-xxxx."
  type        = string
  default     = "davit-workers"

  validation {
    # The service account id is NAME as well: 6 to 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.name))
    error_message = "name: 6 to 30 lower-case letters, digits and dashes, starting with a letter and not ending with a dash."
  }
}

variable "pool" {
  description = "The davit pool the workers join (as in `davit pool create NAME`); labelled on the instances (davit-pool) for the autoscaler."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.pool))
    error_message = "pool: a davit pool name usable as a GCP label value: 1 to 63 lower-case letters, digits, dashes and underscores."
  }
}

variable "project_id" {
  description = "Project of the workers and of the two secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id: a GCP project id (6 to 30 lower-case letters, digits and dashes)."
  }
}

variable "region" {
  description = "Region of the regional managed instance group, e.g. europe-west4 (T2A, for arm64, runs in us-central1, europe-west4 and asia-southeast1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: a GCP region such as europe-west4."
  }
}

variable "zones" {
  description = "Zones of the region to spread the instances over; empty for GCP's choice. For T2A, name zones that have it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "zones: zone names such as europe-west4-a."
  }
}

variable "token_secret" {
  description = "The Secret Manager secret holding the pool token, as printed by `davit pool create`: its name in project_id, or projects/P/secrets/NAME. Never the token itself: it is not put in metadata."
  type        = string

  validation {
    condition     = can(regex("^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/secrets/)?[A-Za-z0-9_-]{1,255}$", var.token_secret))
    error_message = "token_secret: a secret name (letters, digits, dashes, underscores) or projects/PROJECT/secrets/NAME."
  }
}

variable "private_key_secret" {
  description = "The Secret Manager secret holding the pool's private key, the PEM as one line of base64 (`base64 -w 0 davit.key`): same forms as token_secret."
  type        = string

  validation {
    condition     = can(regex("^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/secrets/)?[A-Za-z0-9_-]{1,255}$", var.private_key_secret))
    error_message = "private_key_secret: a secret name or projects/PROJECT/secrets/NAME."
  }
}

variable "machine_type" {
  description = "Machine type of the workers. T2A and C4A types (t2a-standard-4, c4a-standard-4) boot the arm64 image, all others the amd64 one, unless architecture says otherwise."
  type        = string
  default     = "e2-standard-2"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type: a GCE machine type such as e2-standard-2 or t2a-standard-4."
  }
}

variable "architecture" {
  description = "\"amd64\" or \"arm64\" to override the architecture derived from machine_type; empty to derive it."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "amd64", "arm64"], var.architecture)
    error_message = "architecture: \"\", \"amd64\" or \"arm64\"."
  }
}

variable "image" {
  description = "The image to boot (built from deploy/packer's googlecompute sources), as a self link or projects/P/global/images/NAME. Empty: the newest image of the family image_family_prefix-ARCH in image_project."
  type        = string
  default     = ""

  validation {
    condition     = var.image == "" || can(regex("^(https://www.googleapis.com/compute/v1/)?projects/[^/]+/global/images/[a-z0-9-]+$", var.image))
    error_message = "image: empty, or projects/PROJECT/global/images/NAME (or its self link)."
  }
}

variable "image_family_prefix" {
  description = "Family prefix of the images deploy/packer builds (its ami_name_prefix variable: families PREFIX-amd64 and PREFIX-arm64), used when image is empty."
  type        = string
  default     = "davit-launcher-debian12"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,55}$", var.image_family_prefix))
    error_message = "image_family_prefix: 3 to 56 lower-case letters, digits and dashes."
  }
}

variable "image_project" {
  description = "Project the images were built in (deploy/packer's gcp_project_id); empty for project_id."
  type        = string
  default     = ""

  validation {
    condition     = var.image_project == "" || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.image_project))
    error_message = "image_project: empty, or a GCP project id."
  }
}

variable "target_size" {
  description = "Instances when the group is created. Afterwards the autoscaler sets the size; Terraform ignores changes to it."
  type        = number
  default     = 0

  validation {
    condition     = var.target_size >= 0 && var.target_size <= 1000 && floor(var.target_size) == var.target_size
    error_message = "target_size: a whole number from 0 to 1000."
  }
}

variable "subnetwork" {
  description = "Subnetwork of the instances (self link or projects/P/regions/R/subnetworks/NAME). It needs a route out to the davit server, the image registry and Google APIs (Cloud NAT, or Private Google Access for the APIs); the instances get no external address."
  type        = string

  validation {
    condition     = can(regex("^(https://www.googleapis.com/compute/v1/)?projects/[^/]+/regions/[^/]+/subnetworks/[^/]+$", var.subnetwork))
    error_message = "subnetwork: projects/PROJECT/regions/REGION/subnetworks/NAME (or its self link)."
  }
}

variable "disk_size_gb" {
  description = "Size of each instance's boot disk, which holds Docker's images and the runs' containers."
  type        = number
  default     = 64

  validation {
    condition     = var.disk_size_gb >= 10 && var.disk_size_gb <= 65536
    error_message = "disk_size_gb: 10 to 65536."
  }
}

variable "disk_type" {
  description = "Boot disk type. T2A takes pd-balanced, pd-ssd or pd-standard; C4A takes hyperdisk-balanced only."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.disk_type)
    error_message = "disk_type: pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
}

variable "update_type" {
  description = "How template changes reach the instances: OPPORTUNISTIC (when the autoscaler or a pool cycle replaces them; busy workers are never recreated) or PROACTIVE (the group replaces them now, each running its shutdown script: runs longer than GCP's shutdown grace are cut)."
  type        = string
  default     = "OPPORTUNISTIC"

  validation {
    condition     = contains(["OPPORTUNISTIC", "PROACTIVE"], var.update_type)
    error_message = "update_type: OPPORTUNISTIC or PROACTIVE."
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
  description = "More launcher settings, written to /etc/davit/launcher.env (docs/configuration.md), e.g. { DAVIT_METADATA_team = \"web\" }. Never secrets: metadata is readable by anyone who may view the instance and by every process on it."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k, v in var.launcher_env :
      can(regex("^(DAVIT|SPACELIFT)_[A-Za-z0-9_]+$", k)) && !can(regex("[\n\r]", v)) &&
    !contains(["DAVIT_TOKEN", "SPACELIFT_TOKEN", "DAVIT_POOL_PRIVATE_KEY", "SPACELIFT_POOL_PRIVATE_KEY"], k)])
    error_message = "launcher_env: DAVIT_ or SPACELIFT_ names with one-line values, and never the token or the private key (use the Secret Manager secrets)."
  }
}

variable "labels" {
  description = "Labels for the instances and the template (the instances also get davit-pool = pool)."
  type        = map(string)
  default     = {}
}

variable "min_size" {
  description = "The autoscaler's --min (a managed instance group has no bounds of its own): the autoscaler_environment output gives it."
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

variable "autoscaler_service_account" {
  description = "Email of the service account `davit autoscale` runs as (the davit server host's): given, the autoscaler role is granted to it on the project."
  type        = string
  default     = ""

  validation {
    condition     = var.autoscaler_service_account == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.iam\\.gserviceaccount\\.com$", var.autoscaler_service_account))
    error_message = "autoscaler_service_account: a service account's email (NAME@PROJECT.iam.gserviceaccount.com), or empty."
  }
}
