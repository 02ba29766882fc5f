"""HDR+-style burst pipeline teacher (Hasinoff et al. 2016; Monod, Delon, Veit, IPOL 2021).

One file per stage: ``burst`` (bursts: synthesis, DNG read/write), ``align``, ``merge``, ``finish``, and
``pipeline`` (the ``HdrPlus`` teacher that drives them).
"""
from teachers.hdrplus.burst import Burst, read_dng_burst, synthesize_burst, write_dng_burst
from teachers.hdrplus.pipeline import HdrPlus

__all__ = ["Burst", "HdrPlus", "read_dng_burst", "synthesize_burst", "write_dng_burst"]
