"""A PNG of a reportlab map drawing, for documents that cannot hold vector graphics (DOCX).

reportlab's own bitmap renderer needs cairo bindings; the map drawings use only a handful of
shapes, so they are painted here with Pillow (already a reportlab dependency). The image is
drawn oversized and reduced, which smooths the edges, and it depends on nothing but the
drawing, so the same drawing always gives the same bytes.
"""

from __future__ import annotations

import io
import math
from functools import cache
from pathlib import Path

import reportlab
from PIL import Image, ImageDraw, ImageFont
from reportlab.graphics.shapes import Circle, Drawing, Group, Line, Polygon, PolyLine, Shape, String
from reportlab.lib.colors import Color

# Pixels per point of the delivered image (about 216 dpi) and the oversampling factor.
PIXELS_PER_POINT = 3
OVERSAMPLE = 2
FONT_FILE = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"

RGBA = tuple[int, int, int, int]


def _rgba(color: Color | None) -> RGBA | None:
    if color is None:
        return None
    alpha = getattr(color, "alpha", 1.0)
    return (
        round(color.red * 255),
        round(color.green * 255),
        round(color.blue * 255),
        round(alpha * 255),
    )


@cache
def _font(pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILE), pixels)


class _Painter:
    def __init__(self, drawing: Drawing) -> None:
        self.k = PIXELS_PER_POINT * OVERSAMPLE
        self.height = float(drawing.height)
        self.size = (
            round(drawing.width * PIXELS_PER_POINT),
            round(drawing.height * PIXELS_PER_POINT),
        )
        self.image = Image.new(
            "RGB", (self.size[0] * OVERSAMPLE, self.size[1] * OVERSAMPLE), "white"
        )
        # An RGBA drawer blends translucent fills (the radius circle) over what is below.
        self.pen = ImageDraw.Draw(self.image, "RGBA")

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return x * self.k, (self.height - y) * self.k

    def points(self, flat: list[float]) -> list[tuple[float, float]]:
        return [self.xy(x, y) for x, y in zip(flat[::2], flat[1::2], strict=True)]

    def width(self, shape: Shape) -> int:
        return max(1, round(float(getattr(shape, "strokeWidth", 1) or 0) * self.k))

    def paint(self, shape: Shape) -> None:
        if isinstance(shape, Group):
            if tuple(shape.transform) != (1, 0, 0, 1, 0, 0):
                raise ValueError("map_image: transformed groups are not drawn")
            for child in shape.contents:
                self.paint(child)
        elif isinstance(shape, Circle):
            self.circle(shape)
        elif isinstance(shape, Polygon):
            points = self.points(shape.points)
            self.pen.polygon(
                points,
                fill=_rgba(shape.fillColor),
                outline=_rgba(shape.strokeColor),
                width=self.width(shape),
            )
        elif isinstance(shape, PolyLine):
            points = self.points(shape.points)
            self.pen.line(
                points, fill=_rgba(shape.strokeColor), width=self.width(shape), joint="curve"
            )
        elif isinstance(shape, Line):
            self.pen.line(
                [self.xy(shape.x1, shape.y1), self.xy(shape.x2, shape.y2)],
                fill=_rgba(shape.strokeColor),
                width=self.width(shape),
            )
        elif isinstance(shape, String):
            self.text(shape)
        else:
            raise ValueError(f"map_image: {type(shape).__name__} is not drawn")

    def circle(self, shape: Circle) -> None:
        cx, cy = self.xy(shape.cx, shape.cy)
        r = shape.r * self.k
        box = (cx - r, cy - r, cx + r, cy + r)
        stroke = _rgba(shape.strokeColor)
        fill = _rgba(shape.fillColor)
        dashes = shape.strokeDashArray
        if not dashes:
            self.pen.ellipse(box, fill=fill, outline=stroke, width=self.width(shape))
            return
        if fill is not None:
            self.pen.ellipse(box, fill=fill)
        if stroke is None or r < 1:
            return
        # Dashes as arcs: as many dash-and-space pairs as fit round the circumference.
        pair = sum(float(d) for d in dashes[:2]) * self.k
        count = max(2, int(2 * math.pi * r / max(pair, 1.0)))
        step = 360 / count
        for i in range(count):
            self.pen.arc(box, i * step, i * step + step / 2, fill=stroke, width=self.width(shape))

    def text(self, shape: String) -> None:
        font = _font(max(1, round(float(shape.fontSize) * self.k)))
        anchor = {"start": "ls", "middle": "ms", "end": "rs"}.get(shape.textAnchor, "ls")
        self.pen.text(
            self.xy(shape.x, shape.y),
            str(shape.text),
            fill=_rgba(shape.fillColor),
            font=font,
            anchor=anchor,
        )

    def png(self) -> bytes:
        out = io.BytesIO()
        self.image.resize(self.size, Image.Resampling.LANCZOS).save(out, format="PNG")
        return out.getvalue()


def drawing_png(drawing: Drawing) -> bytes:
    """The drawing as a PNG at PIXELS_PER_POINT pixels per point."""
    painter = _Painter(drawing)
    for shape in drawing.contents:
        painter.paint(shape)
    return painter.png()
