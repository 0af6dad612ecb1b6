"""Where on-disk datasets live, and the one error every loader gives when files are missing."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from ..errors import ConfigError

DEFAULT_DATA_DIR = "data"


def data_root(data_dir: Optional[str]) -> Path:
    """--data-dir, or ./data when none is given."""
    return Path(data_dir if data_dir else DEFAULT_DATA_DIR)


def missing_files_error(dataset: str, where: Path, expected: Iterable[str], hint: str = "") -> ConfigError:
    listed = ", ".join(expected)
    return ConfigError(f"dataset '{dataset}' expects {listed} under '{where}', which are missing; "
                       f"pass --data-dir DIR pointing at them{hint}")
