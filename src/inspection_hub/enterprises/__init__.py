"""Enterprises (市场主体) keyed by their unified social credit code (统一社会信用代码)."""
