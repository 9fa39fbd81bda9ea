"""Looking at a cluster: posture checks (findings) and the diagnosis when the canary fails."""
