output "instance_group_manager" {
  description = "Name of the regional managed instance group (the autoscaler's --group, with region and project_id)."
  value       = google_compute_region_instance_group_manager.workers.name
}

output "instance_group_manager_id" {
  description = "Id of the regional managed instance group, projects/P/regions/R/instanceGroupManagers/NAME."
  value       = google_compute_region_instance_group_manager.workers.id
}

output "instance_template" {
  description = "The instance template the group creates instances from."
  value       = google_compute_instance_template.workers.self_link
}

output "architecture" {
  description = "amd64 or arm64: the architecture of the image the instances boot."
  value       = local.arch
}

output "service_account_email" {
  description = "The instances' service account (secretAccessor on the two secrets only)."
  value       = google_service_account.workers.email
}

output "project_id" {
  description = "The group's project (the autoscaler's --project)."
  value       = var.project_id
}

output "region" {
  description = "The group's region (the autoscaler's --region)."
  value       = var.region
}

output "autoscaler_role_id" {
  description = "The autoscaler's custom role (docs/autoscale.md, \"Minimum GCP permissions\"), to grant to another account than autoscaler_service_account yourself."
  value       = google_project_iam_custom_role.autoscaler.id
}

output "autoscaler_environment" {
  description = "Lines for /etc/davit/autoscale.env (add DAVIT_SERVER and DAVIT_API_TOKEN)."
  value       = <<-EOT
    DAVIT_AUTOSCALE_PROVIDER=gcp
    DAVIT_AUTOSCALE_POOL=${var.pool}
    DAVIT_AUTOSCALE_GROUP=${google_compute_region_instance_group_manager.workers.name}
    DAVIT_AUTOSCALE_PROJECT=${var.project_id}
    DAVIT_AUTOSCALE_REGION=${var.region}
    DAVIT_AUTOSCALE_MIN=${var.min_size}
    DAVIT_AUTOSCALE_MAX=${var.max_size}
    DAVIT_AUTOSCALE_EVERY=60s
  EOT
}
