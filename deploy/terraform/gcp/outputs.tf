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
