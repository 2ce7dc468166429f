"""Finish the debian/ directory that stdeb's sdist_dsc wrote for python3-microdeploy.

`make deb` runs sdist_dsc, then this, then dpkg-buildpackage. stdeb 0.10 on
Debian 12's setuptools writes `Homepage: None` (it tests for distutils' old
'UNKNOWN') and uses the first 20 lines of README.md as the long description;
both are replaced here. The files under packaging/debian/ (copyright, man
page, lintian overrides with their reasons) are copied in.
"""

import shutil
import sys
from pathlib import Path

from debian.deb822 import Deb822

LONG_DESCRIPTION = """\
microdeploy turns a Flask microservice into a production Debian package
built with dh-virtualenv, publishes it to a signed APT repository (aptly),
and writes what operations need to run it: Hiera data for its Puppet module,
a Jenkins pipeline and rolling SSH deploys with rollback.
.
It also builds pure Python libraries into python3- packages for the system
interpreter with stdeb (microdeploy build --backend stdeb)."""


def finish(tree: Path) -> None:
    """Rewrite debian/control's description and homepage, add packaging/debian/*."""
    control = tree / "debian" / "control"
    paragraphs = list(Deb822.iter_paragraphs(control.read_text(encoding="utf-8")))
    for paragraph in paragraphs:
        if paragraph.get("Homepage") in ("None", "UNKNOWN"):
            del paragraph["Homepage"]
        if "Package" in paragraph:
            summary = paragraph["Description"].splitlines()[0].strip()
            paragraph["Description"] = summary + "\n" + "\n".join(
                f" {line}" for line in LONG_DESCRIPTION.splitlines()
            )
    control.write_text("\n".join(p.dump() for p in paragraphs), encoding="utf-8")
    overlay = Path(__file__).resolve().parent / "debian"
    shutil.copytree(overlay, tree / "debian", dirs_exist_ok=True)


if __name__ == "__main__":
    finish(Path(sys.argv[1]))
