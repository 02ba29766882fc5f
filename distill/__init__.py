"""hdr-distill: distill slow image operators into real-time bilateral-grid students."""

__version__ = "0.1.0"
