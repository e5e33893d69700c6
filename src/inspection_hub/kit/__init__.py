"""Generic building blocks that know no domain."""
