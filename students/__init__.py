"""Bilateral-grid students: pure grid ops (grid.py), the HDRNet network (hdrnet.py), fused inference."""
