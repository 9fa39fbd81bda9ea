output "cluster_id" {
  value = yandex_kubernetes_cluster.this.id
}

output "registry_id" {
  value = yandex_container_registry.this.id
}

output "registry" {
  description = "Repository prefix for the suite's images: cr.yandex/<registry_id>."
  value       = "cr.yandex/${yandex_container_registry.this.id}"
}

output "nodes_service_account_id" {
  description = "Holder of container-registry.images.puller; its authorized key is Kyverno's regcred."
  value       = yandex_iam_service_account.nodes.id
}

output "get_credentials_command" {
  description = "Adds the cluster to your kubeconfig."
  value       = "yc managed-kubernetes cluster get-credentials --id ${yandex_kubernetes_cluster.this.id} --external --force"
}

output "puller_key_command" {
  description = "Creates the authorized key the seed feeds to Kyverno's regcred (kept out of Terraform state on purpose)."
  value       = "yc iam key create --service-account-id ${yandex_iam_service_account.nodes.id} --output authorized-key.json"
}
