import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "server"))
from davit_fixtures import make_server, server, tmp_path  # noqa: E402,F401
