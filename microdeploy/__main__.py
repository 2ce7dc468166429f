"""Allow `python -m microdeploy`."""

from microdeploy.entry import main

main()
