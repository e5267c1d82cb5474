import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from davit_fixtures import make_server, module_server, server, tmp_path  # noqa: E402,F401
