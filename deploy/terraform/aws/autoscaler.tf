# The autoscaler runs as `davit autoscale --every 60s`, a systemd service on
# the davit server's host (deploy/systemd/davit-autoscale.service); this file
# gives it the least IAM it needs: exactly the actions src/cli/aws.c calls
# (tests/deploy/test_terraform.py checks both ways). Why there and not an ECS or EC2 task:
# docs/deploy-aws.md, "Where the autoscaler runs".

locals {
  autoscaler_command = join(" ", [
    "davit autoscale",
    "--pool ${var.pool}",
    "--group ${aws_autoscaling_group.workers.name}",
    "--region ${local.region}",
    "--every 60s",
  ])
}

resource "aws_iam_policy" "autoscaler" {
  name        = "${var.name}-autoscaler"
  description = "davit autoscale for pool ${var.pool}: read the group, change its desired capacity, terminate its instances, answer its lifecycle hook."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The Describe actions take no resource-level permissions.
        # ec2:DescribeInstances: launch times, for stray instances.
        Sid    = "ReadGroups"
        Effect = "Allow"
        Action = [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeLifecycleHooks",
          "ec2:DescribeInstances",
        ]
        Resource = "*"
      },
      {
        Sid    = "ScaleThisGroupOnly"
        Effect = "Allow"
        Action = [
          "autoscaling:SetDesiredCapacity",
          "autoscaling:TerminateInstanceInAutoScalingGroup",
          "autoscaling:CompleteLifecycleAction",
          "autoscaling:RecordLifecycleActionHeartbeat",
        ]
        Resource = aws_autoscaling_group.workers.arn
        Condition = {
          StringEquals = { "autoscaling:ResourceTag/davit:pool" = var.pool }
        }
      },
    ]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "autoscaler" {
  count      = var.autoscaler_role_name == "" ? 0 : 1
  role       = var.autoscaler_role_name
  policy_arn = aws_iam_policy.autoscaler.arn
}
