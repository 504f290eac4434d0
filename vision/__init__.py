"""Torch-free computer-vision core shared by serving, the dock station and evaluation."""
