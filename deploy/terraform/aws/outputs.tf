output "autoscaling_group_name" {
  description = "The group's name: `davit autoscale --group`."
  value       = aws_autoscaling_group.workers.name
}

output "autoscaling_group_arn" {
  description = "The group's ARN."
  value       = aws_autoscaling_group.workers.arn
}

output "launch_template_id" {
  description = "The launch template the group starts instances from."
  value       = aws_launch_template.workers.id
}

output "ami_id" {
  description = "The machine image the instances boot."
  value       = local.ami_id
}

output "architecture" {
  description = "amd64 or arm64: the architecture of the image and of the launcher each instance downloads."
  value       = local.arch
}

output "instance_role_arn" {
  description = "The instances' IAM role (reads the token and key, nothing else)."
  value       = aws_iam_role.instance.arn
}

output "lifecycle_hook_name" {
  description = "The termination lifecycle hook that `davit autoscale` completes once a worker is drained."
  value       = "${var.name}-drain"
}

output "autoscaler_policy_arn" {
  description = "The autoscaler's IAM policy, to attach to the role or user `davit autoscale` runs as."
  value       = aws_iam_policy.autoscaler.arn
}

output "autoscaler_command" {
  description = "The command deploy/systemd/davit-autoscale.service runs (DAVIT_SERVER and DAVIT_API_TOKEN come from its environment file)."
  value       = local.autoscaler_command
}

output "autoscaler_environment" {
  description = "Lines for /etc/davit/autoscale.env (add DAVIT_SERVER and DAVIT_API_TOKEN)."
  value       = <<-EOT
    DAVIT_AUTOSCALE_POOL=${var.pool}
    DAVIT_AUTOSCALE_GROUP=${aws_autoscaling_group.workers.name}
    DAVIT_AUTOSCALE_REGION=${local.region}
    DAVIT_AUTOSCALE_EVERY=60s
  EOT
}
