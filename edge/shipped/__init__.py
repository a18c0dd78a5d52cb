"""Files the gateway ships beside its code: the systemd unit and udev template, the example
config and its JSON Schema, the model manifests.

In the repository they live in the top-level folders the design card names (`systemd/`,
`config/`, `models/`); `edge/shipped/` holds a relative symlink to each, and the wheel carries
the selected files as package data (setup.cfg, `[options.package_data] edge.shipped`). So an
installed gateway (`pip install`, the Debian package) finds them without a source tree, and an
editable install reads the repository's own files.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def file(*parts: str) -> Traversable:
    """A shipped file, e.g. `file("systemd", "edge.service")`; read it with `.read_text()`."""
    return resources.files(__name__).joinpath(*parts)
