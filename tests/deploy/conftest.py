"""Helpers for tests/deploy: the Terraform module (parsed with
@cdktf/hcl2json, which scripts/install-hcl2json puts in
~/.cache/davit-hcl2json), the Packer image and the boot script's AWS side."""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "aws"))

SOURCE = os.path.abspath(os.environ.get("DAVIT_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
MODULE = os.path.join(SOURCE, "deploy", "terraform", "aws")
TEMPLATE = os.path.join(MODULE, "templates", "user-data.sh.tftpl")
HCL2JSON_DIR = os.environ.get("DAVIT_HCL2JSON_DIR") or os.path.join(
    os.path.expanduser("~"), ".cache", "davit-hcl2json")


def tf_files(directory):
    """The .tf files of one module directory (not of its subdirectories)."""
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".tf"))


def parse_hcl(files):
    """{file: body as JSON} for HCL2 files; AssertionError naming the file
    that does not parse."""
    modules = os.path.join(HCL2JSON_DIR, "node_modules")
    assert os.path.isdir(os.path.join(modules, "@cdktf", "hcl2json")), \
        f"{HCL2JSON_DIR} lacks @cdktf/hcl2json: run scripts/install-hcl2json (make deps)"
    p = subprocess.run(["node", os.path.join(HERE, "hcl2json.js"), *files],
                       env={**os.environ, "NODE_PATH": modules}, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# Terraform's template syntax, in the simple forms the user-data template
# uses: ${name} interpolations of the variables templatefile() is given.
# A directive (%{...}) or any other expression is refused, so that this
# rendering stays the same as Terraform's.
PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}")


def render_template(text, values):
    assert "%{" not in text, "the template uses a directive (%{...}): extend render_template"
    assert "$${" not in text and "%%{" not in text, "escapes: extend render_template"

    def one(m):
        name = m.group(1)
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), f"${{{name}}}: not a simple name"
        assert name in values, f"${{{name}}} is not given to templatefile()"
        v = values[name]
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return PLACEHOLDER.sub(one, text)


def template_placeholders(text):
    return set(PLACEHOLDER.findall(text))


def templatefile_keys(main_tf_text):
    """The names main.tf gives templatefile() for the user-data template."""
    m = re.search(r'templatefile\("\$\{path\.module\}/templates/user-data\.sh\.tftpl",\s*\{(.*?)\}\)',
                  main_tf_text, re.S)
    assert m, "main.tf renders no templates/user-data.sh.tftpl with templatefile()"
    return set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", m.group(1), re.M))
