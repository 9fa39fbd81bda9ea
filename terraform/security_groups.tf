# The rules Managed Kubernetes needs for the master and the nodes: health checks from the
# network load balancer ranges, traffic inside the group and between pods and services,
# ICMP from private ranges, the Kubernetes API from var.api_allowed_cidrs, egress anywhere
# (images, Kyverno's registry look-ups).
resource "yandex_vpc_security_group" "k8s" {
  name        = "${var.name_prefix}-k8s"
  description = "Managed Kubernetes master and nodes"
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description       = "Network load balancer health checks"
    protocol          = "TCP"
    predefined_target = "loadbalancer_healthchecks"
    from_port         = 0
    to_port           = 65535
  }

  ingress {
    description       = "Master and nodes talk to each other"
    protocol          = "ANY"
    predefined_target = "self_security_group"
    from_port         = 0
    to_port           = 65535
  }

  ingress {
    description    = "Pods and services talk to each other"
    protocol       = "ANY"
    v4_cidr_blocks = [var.cluster_ipv4_range, var.service_ipv4_range]
    from_port      = 0
    to_port        = 65535
  }

  ingress {
    description    = "ICMP from private ranges (diagnostics)"
    protocol       = "ICMP"
    v4_cidr_blocks = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
  }

  ingress {
    description    = "Kubernetes API"
    protocol       = "TCP"
    v4_cidr_blocks = var.api_allowed_cidrs
    port           = 443
  }

  ingress {
    description    = "Kubernetes API"
    protocol       = "TCP"
    v4_cidr_blocks = var.api_allowed_cidrs
    port           = 6443
  }

  dynamic "ingress" {
    for_each = length(var.nodeport_allowed_cidrs) > 0 ? [1] : []
    content {
      description    = "NodePort services"
      protocol       = "TCP"
      v4_cidr_blocks = var.nodeport_allowed_cidrs
      from_port      = 30000
      to_port        = 32767
    }
  }

  egress {
    description    = "Anything out: registries, Yandex Cloud APIs"
    protocol       = "ANY"
    v4_cidr_blocks = ["0.0.0.0/0"]
    from_port      = 0
    to_port        = 65535
  }
}
