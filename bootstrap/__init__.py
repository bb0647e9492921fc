"""Zone bootstrap appliance: from powered-on metal to working pods, by location."""

__version__ = "0.1.0"
