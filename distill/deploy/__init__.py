"""Deployment: export (TorchScript, ONNX) and apply (a student over a folder)."""
