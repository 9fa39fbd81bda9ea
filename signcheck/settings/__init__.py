"""The suite's settings: option table, precedence (CLI > env > profile > default)."""
