"""What a run signs and attacks: test images, signing keys, KMS keys, forgeries."""
