"""Rendering: pure image tiling, and PNG files."""

from unitlens.render.png import load_png, save_png
from unitlens.render.tiles import scale_tile, stack_panels, tile_images, upscale

__all__ = ["load_png", "save_png", "scale_tile", "stack_panels", "tile_images", "upscale"]
