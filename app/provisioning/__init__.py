"""The create proxy: validated, idempotent, durable provisioning and the lifecycle passthrough."""
