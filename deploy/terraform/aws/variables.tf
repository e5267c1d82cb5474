variable "name" {
  description = "Name of everything this module creates (group, launch template, roles, policies); also the instances' Name tag."
  type        = string
  default     = "davit-workers"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,37}$", var.name))
    error_message = "name: 1 to 38 letters, digits and dashes, starting with a letter (it prefixes IAM names, which are limited to 64 characters)."
  }
}

variable "pool" {
  description = "The davit pool the workers join (as in `davit pool create NAME`); tagged on the group and given to the autoscaler."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", var.pool))
    error_message = "pool: a davit pool name, 1 to 64 letters, digits, dots, dashes and underscores."
  }
}

variable "token_from" {
  description = "Where the instances read the pool token at boot: \"ssm:/NAME\" (an SSM SecureString parameter, by name or ARN) or \"secretsmanager:ARN\" (a Secrets Manager secret, by full ARN). Never the token itself: it is not put in user data."
  type        = string

  validation {
    condition     = can(regex("^(ssm:(/[A-Za-z0-9_./-]+|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_./-]+)|secretsmanager:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)$", var.token_from))
    error_message = "token_from: \"ssm:/NAME\", \"ssm:ARN\" or \"secretsmanager:ARN\" (a secret's full ARN, so that the instance role can be limited to it)."
  }
}

variable "private_key_from" {
  description = "Where the instances read the pool's private key (the PEM as one line of base64, `base64 -w 0 davit.key`) at boot: same forms as token_from."
  type        = string

  validation {
    condition     = can(regex("^(ssm:(/[A-Za-z0-9_./-]+|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_./-]+)|secretsmanager:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)$", var.private_key_from))
    error_message = "private_key_from: \"ssm:/NAME\", \"ssm:ARN\" or \"secretsmanager:ARN\"."
  }
}

variable "kms_key_arn" {
  description = "The customer managed KMS key that encrypts the token and key, if any: the instance role then gets kms:Decrypt on it, through SSM or Secrets Manager only. Empty for the AWS managed keys (aws/ssm, aws/secretsmanager), which need no grant."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn: empty, or a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; not an alias)."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the workers. Graviton families (t4g, m7g, c7gn, ...) boot the arm64 image, all others the amd64 one, unless architecture says otherwise."
  type        = string
  default     = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type: an EC2 instance type such as t3.large or m7g.xlarge."
  }
}

variable "architecture" {
  description = "\"amd64\" or \"arm64\" to override the architecture derived from instance_type; empty to derive it."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "amd64", "arm64"], var.architecture)
    error_message = "architecture: \"\", \"amd64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "The machine image to boot (built from deploy/packer). Empty: the newest image named ami_name_prefix-ARCH-* owned by ami_owners."
  type        = string
  default     = ""

  validation {
    condition     = var.ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id: empty, or an AMI id (ami-0123456789abcdef0)."
  }
}

variable "ami_name_prefix" {
  description = "Name prefix of the images that deploy/packer builds (its ami_name_prefix variable), used when ami_id is empty."
  type        = string
  default     = "davit-launcher-debian12"

  validation {
    condition     = can(regex("^[A-Za-z0-9()\\[\\]./_-]{3,100}$", var.ami_name_prefix))
    error_message = "ami_name_prefix: 3 to 100 characters allowed in AMI names."
  }
}

variable "ami_owners" {
  description = "Accounts whose images are searched when ami_id is empty (\"self\": the account that ran packer)."
  type        = list(string)
  default     = ["self"]

  validation {
    condition     = length(var.ami_owners) > 0
    error_message = "ami_owners: at least one owner (\"self\" or an account id)."
  }
}

variable "min_size" {
  description = "Fewest instances in the group. The autoscaler never sets a desired capacity below it; 0 lets an idle pool cost nothing."
  type        = number
  default     = 0

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size: a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Most instances in the group: the autoscaler's ceiling. Must be at least min_size and at least 1."
  type        = number
  default     = 4

  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "max_size: a whole number, 1 or more."
  }
}

variable "subnet_ids" {
  description = "Subnets the instances start in (one or more availability zones). They need a route to the davit server and to SSM or Secrets Manager (a NAT gateway or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids: one or more subnet ids (subnet-...)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the instances. Launchers only connect out (to the server, the registry, AWS); no inbound rule is needed."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) > 0 && alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "security_group_ids: one or more security group ids (sg-...)."
  }
}

variable "root_volume_size" {
  description = "Size in GiB of each instance's root volume (gp3, encrypted): images and run directories live there."
  type        = number
  default     = 40

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 16384
    error_message = "root_volume_size: 8 to 16384 GiB."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH to the instances; empty for none. The instance role grants no Session Manager access: attach AmazonSSMManagedInstanceCore to it yourself to use SSM Session Manager instead of a key."
  type        = string
  default     = ""
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

variable "worker_runtime" {
  description = "OCI runtime of run containers (DAVIT_WORKER_RUNTIME): \"\" for Docker's default, \"runsc\" for gVisor (the image must be built with install_gvisor = true)."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "runc", "runsc"], var.worker_runtime)
    error_message = "worker_runtime: \"\", \"runc\" or \"runsc\"."
  }
}

variable "launcher_env" {
  description = "More launcher settings, written to /etc/davit/launcher.env (docs/configuration.md), e.g. { DAVIT_LAUNCHER_CONCURRENCY = \"2\", DAVIT_METADATA_team = \"web\" }. Never secrets: user data is readable by anyone who may describe the instance."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k, v in var.launcher_env :
      can(regex("^(DAVIT|SPACELIFT)_[A-Za-z0-9_]+$", k)) && !can(regex("[\n\r]", v)) &&
    !contains(["DAVIT_TOKEN", "SPACELIFT_TOKEN", "DAVIT_POOL_PRIVATE_KEY", "SPACELIFT_POOL_PRIVATE_KEY"], k)])
    error_message = "launcher_env: DAVIT_ or SPACELIFT_ names with one-line values, and never the token or the private key (use token_from and private_key_from)."
  }

  # A run on the host's network reaches the instance metadata service (the hop limit of 1 only
  # stops bridged containers) and with it the instance role: the token and the pool's private key.
  validation {
    condition = alltrue([for k, v in var.launcher_env :
    !(contains(["DAVIT_WORKER_NETWORK", "SPACELIFT_WORKER_NETWORK"], k) && lower(trimspace(v)) == "host")])
    error_message = "launcher_env: DAVIT_WORKER_NETWORK = \"host\" is refused: a run on the host's network could reach the instance metadata service and read the pool's token and private key with the instance role."
  }
}

variable "poweroff_on_cycle" {
  description = "Power the instance off when its launcher ends for a pool cycle or a drain (deploy/systemd/poweroff-on-cycle.conf), so that the group replaces it with a fresh one."
  type        = bool
  default     = true
}

variable "drain_timeout" {
  description = "The termination lifecycle hook's heartbeat timeout in seconds: how long an instance waits while its runs finish when no heartbeat comes. davit autoscale records a heartbeat while the worker holds runs (so a run is held up to AWS's global timeout, 100 times this or 48 h) and completes the action as soon as the worker is drained. Without the autoscaler running, this alone bounds a drain: keep it at least the run timeout + the image pull timeout + two autoscaler ticks (4200 + 900 + 2 x 60 by default, so 5400). At most 7200."
  type        = number
  default     = 5400

  validation {
    condition     = var.drain_timeout >= 30 && var.drain_timeout <= 7200
    error_message = "drain_timeout: 30 to 7200 seconds (AWS's limits for a lifecycle hook's heartbeat timeout)."
  }
}

variable "autoscaler_role_name" {
  description = "An existing IAM role to give the autoscaler's policy to: the instance role of the host that runs `davit autoscale` (deploy/systemd/davit-autoscale.service). Empty: the policy is only created (output autoscaler_policy_arn)."
  type        = string
  default     = ""

  validation {
    condition     = var.autoscaler_role_name == "" || can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.autoscaler_role_name))
    error_message = "autoscaler_role_name: empty, or an IAM role name (not an ARN)."
  }
}

variable "tags" {
  description = "Tags for every resource this module creates, propagated to the instances."
  type        = map(string)
  default     = {}
}
