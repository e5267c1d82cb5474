# A pool of davit workers on a regional managed instance group of Debian 12
# machines from deploy/packer's googlecompute image. The metadata holds no
# secret: each instance reads the pool token and key from Secret Manager
# with its own service account (deploy/boot/davit-boot-gcp), which may access
# those two secrets and nothing else. When the group deletes an instance,
# the shutdown script drains the launcher, within GCP's shutdown grace
# (docs/deploy-gcp.md, "How long GCP waits").

locals {
  # Arm machine series: T2A (Ampere Altra) and C4A (Axion).
  derived_arch  = can(regex("^(t2a|c4a)-", var.machine_type)) ? "arm64" : "amd64"
  arch          = var.architecture != "" ? var.architecture : local.derived_arch
  image_project = var.image_project != "" ? var.image_project : var.project_id
  image         = var.image != "" ? var.image : data.google_compute_image.launcher[0].self_link
  secrets = {
    token = startswith(var.token_secret, "projects/") ? var.token_secret : "projects/${var.project_id}/secrets/${var.token_secret}"
    key   = startswith(var.private_key_secret, "projects/") ? var.private_key_secret : "projects/${var.project_id}/secrets/${var.private_key_secret}"
  }

  env_lines = [for k in sort(keys(var.launcher_env)) : "${k}=${var.launcher_env[k]}"]
  startup_script = templatefile("${path.module}/templates/startup-script.sh.tftpl", {
    token_from       = "gcp-secretmanager:${local.secrets.token}"
    private_key_from = "gcp-secretmanager:${local.secrets.key}"
    server_ca_pem    = var.server_ca_pem
    extra_env        = join("\n", local.env_lines)
  })
}

data "google_compute_image" "launcher" {
  count   = var.image == "" ? 1 : 0
  family  = "${var.image_family_prefix}-${local.arch}"
  project = local.image_project
}

# The instances' own identity: it can access the two secrets' versions and
# nothing else (no project role at all).
resource "google_service_account" "workers" {
  project      = var.project_id
  account_id   = var.name
  display_name = "davit workers of pool ${var.pool}"
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each  = local.secrets
  project   = split("/", each.value)[1]
  secret_id = split("/", each.value)[3]
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.workers.email}"
}

resource "google_compute_instance_template" "workers" {
  project      = var.project_id
  name_prefix  = "${var.name}-"
  region       = var.region
  machine_type = var.machine_type
  labels       = merge(var.labels, { "davit-pool" = var.pool })

  disk {
    source_image = local.image
    boot         = true
    auto_delete  = true
    disk_type    = var.disk_type
    disk_size_gb = var.disk_size_gb
  }

  network_interface {
    subnetwork = var.subnetwork
  }

  service_account {
    email = google_service_account.workers.email
    # What the account may do is its IAM roles' (the secrets above); the
    # scope only lets it use them.
    scopes = ["cloud-platform"]
  }

  metadata = {
    startup-script  = local.startup_script
    shutdown-script = file("${path.module}/templates/shutdown-script.sh")
    enable-oslogin  = "TRUE"
  }

  scheduling {
    automatic_restart = true
    # Arm machines cannot live-migrate.
    on_host_maintenance = local.arch == "arm64" ? "TERMINATE" : "MIGRATE"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_instance_group_manager" "workers" {
  project                   = var.project_id
  name                      = var.name
  region                    = var.region
  base_instance_name        = var.name
  target_size               = var.target_size
  distribution_policy_zones = length(var.zones) > 0 ? var.zones : null

  version {
    instance_template = google_compute_instance_template.workers.id
  }

  update_policy {
    type = var.update_type
    # A regional group otherwise deletes instances to even out its zones,
    # busy or not: never for davit.
    instance_redistribution_type = "NONE"
    minimal_action               = "REPLACE"
    replacement_method           = "SUBSTITUTE"
    max_surge_fixed              = 3
    max_unavailable_fixed        = 0
  }

  lifecycle {
    # The autoscaler owns the size.
    ignore_changes = [target_size]
  }

  depends_on = [google_secret_manager_secret_iam_member.access]
}

# The autoscaler's least privilege (docs/autoscale.md, "Minimum GCP
# permissions"): exactly the calls `davit autoscale --provider gcp` makes,
# granted on the project to the service account given (the davit server
# host's).
resource "google_project_iam_custom_role" "autoscaler" {
  project     = var.project_id
  role_id     = "davitAutoscaler_${replace(var.name, "-", "_")}"
  title       = "davit autoscaler (${var.name})"
  description = "davit autoscale: reads the managed instance group ${var.name}, resizes it, deletes and recreates chosen instances."
  permissions = [
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.instances.get",
    "compute.instances.delete",
  ]
}

resource "google_project_iam_member" "autoscaler" {
  count   = var.autoscaler_service_account != "" ? 1 : 0
  project = var.project_id
  role    = google_project_iam_custom_role.autoscaler.id
  member  = "serviceAccount:${var.autoscaler_service_account}"
}
