"""Outbound webhooks: subscriptions, signed deliveries and the SSRF guard."""
