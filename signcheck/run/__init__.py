"""One run's life: its resources and names, shared state, claims, removal, interrupts."""
