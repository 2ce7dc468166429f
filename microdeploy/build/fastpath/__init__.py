"""What makes the dh-virtualenv build fast: uv as the installer, the project's wheel and the dependency
layer made beside dpkg-buildpackage, and contract.py, the names they share with the debian/ scripts."""
