"""The event backbone: declared event types, the transactional outbox, handlers and the relay."""
