"""`microdeploy build`: a project directory to dist/*.deb, .buildinfo and .changes.

The modules, in the order a build uses them:

    pipeline.py     build(): hands the settings to the backend they name, once per Debian release
    release/        what is built: the settings, the version (project, git, CI, the
                    release's +debN), the date and the changelog
    buildroot.py    the clean root of another Debian release (mmdebstrap, cached), entered
                    without booting: both backends run their commands there
    dhvirtualenv.py the dh-virtualenv backend (services): plan, build tree, dpkg-buildpackage
    debiandir/      the debian/ directory: its template context and its rendering into the build tree
    fastpath/       what makes that build fast: the installer (uv or pip), the project's wheel and
                    a copy of the dependency layer made on the other core (jobs.py), and
                    contract.py, every name they share with the debian/ scripts
    imports.py      what the built package's venv cannot import (removed standard modules,
                    undeclared distributions), read from the project's wheel for a warning
    packagedata.py  the Flask templates/static files the checkout has and the wheel leaves out
    stdeb.py        the stdeb backend (pure libraries as python3-NAME)
    dpkg.py         dpkg-buildpackage and dpkg's generators, for both backends
    output.py       the output directory and the result
    cache.py        the cache directory that builds share
"""
