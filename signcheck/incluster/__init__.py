"""The suite inside the cluster it judges: its image, the Job, the Sonobuoy contract."""
