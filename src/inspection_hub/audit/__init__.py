"""The hash-chained audit trail (审计留痕): every write, who, what, before and after."""
