"""Inspections: scheduling, execution, completion and inspection codes (检查码)."""
