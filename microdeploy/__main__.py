"""Allow `python -m microdeploy`."""

from microdeploy.cli import main

main()
