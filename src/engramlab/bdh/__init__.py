"""BDH (the Dragon Hatchling, BDH-GPU): model, conversion from the official code, inspection."""

from engramlab.bdh.model import BDH, BDHConfig

__all__ = ["BDH", "BDHConfig"]
