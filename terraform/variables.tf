variable "folder_id" {
  description = "Folder that holds the cluster, the registry and the service accounts."
  type        = string
}

variable "zone" {
  description = "Availability zone of the subnet, the master and the nodes."
  type        = string
  default     = "ru-central1-a"
}

variable "name_prefix" {
  description = "Prefix of every resource name, so several test stands can share a folder."
  type        = string
  default     = "signcheck"
}

variable "k8s_version" {
  description = "Kubernetes version of the master and the node group (a version Managed Service for Kubernetes offers)."
  type        = string
  default     = "1.33"
}

variable "subnet_cidr" {
  description = "CIDR of the subnet the master and nodes live in."
  type        = string
  default     = "10.1.0.0/16"
}

variable "cluster_ipv4_range" {
  description = "Pod CIDR of the cluster; must not overlap the subnet."
  type        = string
  default     = "10.112.0.0/16"
}

variable "service_ipv4_range" {
  description = "Service CIDR of the cluster; must not overlap the subnet or the pod CIDR."
  type        = string
  default     = "10.96.0.0/16"
}

variable "api_allowed_cidrs" {
  description = "Who may reach the Kubernetes API (443, 6443). Narrow it to your CI's egress addresses."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "nodeport_allowed_cidrs" {
  description = "Who may reach NodePort services (30000-32767); empty closes them."
  type        = list(string)
  default     = []
}

variable "node_count" {
  description = "Nodes in the fixed-size node group."
  type        = number
  default     = 1
}

variable "node_platform" {
  description = "Compute platform of the nodes."
  type        = string
  default     = "standard-v3"
}

variable "node_cores" {
  type    = number
  default = 2
}

variable "node_memory_gb" {
  type    = number
  default = 4
}

variable "node_disk_gb" {
  type    = number
  default = 64
}

variable "registry_name" {
  description = "Name of the Container Registry; empty uses name_prefix."
  type        = string
  default     = ""
}
