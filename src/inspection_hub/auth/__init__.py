"""People, bearer tokens, roles and the per-agency scoping dependency."""
