"""inspection-hub: caps repeat inspections of enterprises (双随机、一公开)."""

__version__ = "0.1.0"
