"""Copy the front-end packages' built files into web/static/vendor (run by `make assets`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tagwatch.web.templating import STATIC_DIR

# (source under node_modules, destination under static/vendor)
VENDOR_FILES: tuple[tuple[str, str], ...] = (
    ("govuk-frontend/dist/govuk/govuk-frontend.min.css", "govuk-frontend/govuk-frontend.min.css"),
    ("govuk-frontend/dist/govuk/govuk-frontend.min.js", "govuk-frontend/govuk-frontend.min.js"),
    ("govuk-frontend/dist/govuk/assets", "govuk-frontend/assets"),
    ("@ministryofjustice/frontend/moj/moj-frontend.min.css", "moj-frontend/moj-frontend.min.css"),
    ("@ministryofjustice/frontend/moj/moj-frontend.min.js", "moj-frontend/moj-frontend.min.js"),
    ("@ministryofjustice/frontend/moj/assets", "moj-frontend/assets"),
    ("leaflet/dist/leaflet.js", "leaflet/leaflet.js"),
    ("leaflet/dist/leaflet.css", "leaflet/leaflet.css"),
    ("leaflet/dist/images", "leaflet/images"),
    ("axe-core/axe.min.js", "axe-core/axe.min.js"),
)


def copy_assets(node_modules: Path, vendor: Path) -> int:
    copied = 0
    for source, destination in VENDOR_FILES:
        src, dst = node_modules / source, vendor / destination
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing: run `npm ci` first")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
        copied += 1
    return copied


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("node_modules")
    count = copy_assets(root, STATIC_DIR / "vendor")
    print(f"copied {count} front-end assets into {STATIC_DIR / 'vendor'}")
