import os
import sys

here = os.path.dirname(__file__)
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "server"))
from davit_fixtures import make_server, server, tmp_path  # noqa: E402,F401
