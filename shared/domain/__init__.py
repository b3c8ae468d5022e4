"""The service's vocabulary: its tables, the contract's models, and the errors it can raise."""
