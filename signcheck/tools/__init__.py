"""The pinned tools: their pins, building them from Go modules, and one wrapper per CLI."""
