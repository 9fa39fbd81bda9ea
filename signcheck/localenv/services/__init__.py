"""One small class per service: its flags, files and health check."""
