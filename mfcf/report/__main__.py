"""``python -m mfcf.report RUN_DIR [options]`` (the same as ``mfcf report``)."""

import sys

from .command import main

sys.exit(main())
