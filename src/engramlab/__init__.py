"""engramlab: brain-inspired sequence models and neural-state discovery."""

__version__ = "0.1.0"
