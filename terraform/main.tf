# The tutorial's infrastructure: network, subnet, security group, service accounts with
# non-authoritative role bindings, a Managed Kubernetes cluster with one node group, and a
# Container Registry. Everything is named from var.name_prefix so teardown finds it.

locals {
  registry_name = var.registry_name != "" ? var.registry_name : "${var.name_prefix}-registry"
  labels = {
    created-by = "signcheck"
  }
}

resource "yandex_vpc_network" "this" {
  name   = "${var.name_prefix}-network"
  labels = local.labels
}

resource "yandex_vpc_subnet" "this" {
  name           = "${var.name_prefix}-subnet"
  zone           = var.zone
  network_id     = yandex_vpc_network.this.id
  v4_cidr_blocks = [var.subnet_cidr]
  labels         = local.labels
}

# Service account the cluster uses to create its resources (and public IPs).
resource "yandex_iam_service_account" "resources" {
  name        = "${var.name_prefix}-k8s-resources"
  description = "Managed Kubernetes: creates the cluster's resources"
}

# Service account of the nodes: pulls images from Container Registry; its authorized key
# also feeds Kyverno's regcred image pull secret.
resource "yandex_iam_service_account" "nodes" {
  name        = "${var.name_prefix}-k8s-nodes"
  description = "Managed Kubernetes nodes: pull images from Container Registry"
}

# Member bindings add one member to a role and never remove anyone else's access, unlike
# the authoritative *_iam_binding / *_iam_policy resources.
resource "yandex_resourcemanager_folder_iam_member" "k8s_clusters_agent" {
  folder_id = var.folder_id
  role      = "k8s.clusters.agent"
  member    = "serviceAccount:${yandex_iam_service_account.resources.id}"
}

resource "yandex_resourcemanager_folder_iam_member" "vpc_public_admin" {
  folder_id = var.folder_id
  role      = "vpc.publicAdmin"
  member    = "serviceAccount:${yandex_iam_service_account.resources.id}"
}

resource "yandex_resourcemanager_folder_iam_member" "images_puller" {
  folder_id = var.folder_id
  role      = "container-registry.images.puller"
  member    = "serviceAccount:${yandex_iam_service_account.nodes.id}"
}

resource "yandex_container_registry" "this" {
  name      = local.registry_name
  folder_id = var.folder_id
  labels    = local.labels
}

resource "yandex_kubernetes_cluster" "this" {
  name        = "${var.name_prefix}-cluster"
  description = "signcheck: Cosign signature verification with Kyverno"
  network_id  = yandex_vpc_network.this.id

  cluster_ipv4_range = var.cluster_ipv4_range
  service_ipv4_range = var.service_ipv4_range

  master {
    version            = var.k8s_version
    public_ip          = true
    security_group_ids = [yandex_vpc_security_group.k8s.id]
    zonal {
      zone      = var.zone
      subnet_id = yandex_vpc_subnet.this.id
    }
  }

  service_account_id      = yandex_iam_service_account.resources.id
  node_service_account_id = yandex_iam_service_account.nodes.id
  labels                  = local.labels

  # The cluster cannot be created, nor deleted cleanly, without its accounts' roles.
  depends_on = [
    yandex_resourcemanager_folder_iam_member.k8s_clusters_agent,
    yandex_resourcemanager_folder_iam_member.vpc_public_admin,
    yandex_resourcemanager_folder_iam_member.images_puller,
  ]
}

resource "yandex_kubernetes_node_group" "this" {
  cluster_id = yandex_kubernetes_cluster.this.id
  name       = "${var.name_prefix}-nodes"
  version    = var.k8s_version
  labels     = local.labels

  instance_template {
    platform_id = var.node_platform

    network_interface {
      nat                = true
      subnet_ids         = [yandex_vpc_subnet.this.id]
      security_group_ids = [yandex_vpc_security_group.k8s.id]
    }

    resources {
      cores  = var.node_cores
      memory = var.node_memory_gb
    }

    boot_disk {
      type = "network-ssd"
      size = var.node_disk_gb
    }

    container_runtime {
      type = "containerd"
    }
  }

  scale_policy {
    fixed_scale {
      size = var.node_count
    }
  }

  allocation_policy {
    location {
      zone = var.zone
    }
  }
}
