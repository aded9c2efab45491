"""Pixel work on images with Pillow (canvases, masks, paste-back), in plain bytes: no Discord, no API."""
