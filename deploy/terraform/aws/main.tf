# A davit worker pool on an EC2 Auto Scaling group: launch template, instance
# role, group with a termination lifecycle hook, and the autoscaler's policy.
# docs/deploy-aws.md walks through it; docs/autoscale.md explains the
# autoscaler's decisions.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.id
  account   = data.aws_caller_identity.current.account_id

  # Graviton families carry a "g" after their generation (t4g, m7g, c7gn,
  # g5g, x2gd, im4gn, is4gen) and a1 is Graviton 1; everything else here is
  # x86_64.
  family       = split(".", var.instance_type)[0]
  derived_arch = can(regex("^(a1|[a-z]+[0-9]+g[a-z]*)$", local.family)) ? "arm64" : "amd64"
  arch         = var.architecture != "" ? var.architecture : local.derived_arch
  aws_arch     = local.arch == "arm64" ? "arm64" : "x86_64"
  ami_id       = var.ami_id != "" ? var.ami_id : data.aws_ami.launcher[0].id

  # "ssm:/NAME" or "ssm:ARN" or "secretsmanager:ARN" -> the ARN IAM names.
  secret_sources = [var.token_from, var.private_key_from]
  ssm_arns = [for s in local.secret_sources :
    startswith(s, "ssm:arn:") ? trimprefix(s, "ssm:") :
    "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter/${trimprefix(s, "ssm:/")}"
  if startswith(s, "ssm:")]
  secret_arns = [for s in local.secret_sources : trimprefix(s, "secretsmanager:")
  if startswith(s, "secretsmanager:")]

  instance_statements = concat(
    length(local.ssm_arns) == 0 ? [] : [{
      Sid      = "ReadPoolSecretsFromParameterStore"
      Effect   = "Allow"
      Action   = ["ssm:GetParameter"]
      Resource = distinct(local.ssm_arns)
    }],
    length(local.secret_arns) == 0 ? [] : [{
      Sid      = "ReadPoolSecretsFromSecretsManager"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = distinct(local.secret_arns)
    }],
    var.kms_key_arn == "" ? [] : [{
      Sid      = "DecryptPoolSecrets"
      Effect   = "Allow"
      Action   = ["kms:Decrypt"]
      Resource = [var.kms_key_arn]
      Condition = {
        StringEquals = {
          "kms:ViaService" = [
            "ssm.${local.region}.amazonaws.com",
            "secretsmanager.${local.region}.amazonaws.com",
          ]
        }
      }
    }],
  )

  # /etc/davit/launcher.env lines besides the secrets' locations: no secret
  # is ever rendered into user data.
  env_lines = concat(
    var.worker_runtime == "" ? [] : ["DAVIT_WORKER_RUNTIME=${var.worker_runtime}"],
    [for k in sort(keys(var.launcher_env)) : "${k}=${var.launcher_env[k]}"],
  )

  user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", {
    token_from        = var.token_from
    private_key_from  = var.private_key_from
    region            = local.region
    server_ca_pem     = trimspace(var.server_ca_pem)
    extra_env         = join("\n", local.env_lines)
    poweroff_on_cycle = var.poweroff_on_cycle
  })

  tags = merge(var.tags, { "davit:pool" = var.pool })
}

data "aws_ami" "launcher" {
  count       = var.ami_id == "" ? 1 : 0
  most_recent = true
  owners      = var.ami_owners

  filter {
    name   = "name"
    values = ["${var.ami_name_prefix}-${local.arch}-*"]
  }
  filter {
    name   = "architecture"
    values = [local.aws_arch]
  }
}

# The instances' role: read the two secrets, nothing else.
resource "aws_iam_role" "instance" {
  name = "${var.name}-instance"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "instance_secrets" {
  name   = "${var.name}-read-pool-secrets"
  role   = aws_iam_role.instance.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.instance_statements })
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-instance"
  role = aws_iam_role.instance.name
  tags = local.tags
}

resource "aws_launch_template" "workers" {
  name_prefix   = "${var.name}-"
  description   = "davit launchers of pool ${var.pool}"
  image_id      = local.ami_id
  instance_type = var.instance_type
  key_name      = var.key_name == "" ? null : var.key_name
  # A machine that powers itself off (poweroff_on_cycle, a drained pool cycle) is to be replaced,
  # not kept stopped: terminated, the group launches a fresh one.
  instance_initiated_shutdown_behavior = "terminate"
  vpc_security_group_ids               = var.security_group_ids
  user_data                            = base64encode(local.user_data)
  update_default_version               = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only, and one hop: the boot script reaches the role's credentials,
  # run containers (one hop further, behind Docker's bridge) do not.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = var.name })
  }
  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = var.name })
  }
  tags = local.tags
}

resource "aws_autoscaling_group" "workers" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  vpc_zone_identifier = var.subnet_ids
  health_check_type   = "EC2"
  # Never relied on: the autoscaler drains a worker before it terminates it,
  # and the lifecycle hook below covers every other scale-in.
  protect_from_scale_in = false

  launch_template {
    id      = aws_launch_template.workers.id
    version = aws_launch_template.workers.latest_version
  }

  # Every termination (the autoscaler's, a scale-in, an instance refresh, a
  # manual one) waits here until `davit autoscale` has drained the worker and
  # its runs are done, then completes the action; CONTINUE if nobody does.
  initial_lifecycle_hook {
    name                 = "${var.name}-drain"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.drain_timeout
    default_result       = "CONTINUE"
  }

  # A new image or launch template replaces instances through the same hook:
  # half of them at a time, each drained before it goes, so that the pool
  # keeps taking runs while the other half boots the new launcher.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The autoscaler owns the desired capacity.
    ignore_changes = [desired_capacity]
    precondition {
      condition     = var.min_size <= var.max_size
      error_message = "min_size must not exceed max_size."
    }
  }
}
