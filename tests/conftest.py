"""Shared fixtures: booted hosts come from tests/testbed/, built packages from tests/packages.py."""

import os

pytest_plugins = ["tests.testbed.fixtures", "tests.packages"]

# The suite's own host images (five package sets over two releases, their
# trees, piuparts bases and mirror files) come close to the default size of
# that cache; the prune after a `check` in one test must not remove the
# images the next tests boot. tests/unit/test_image_cache.py tests the prune.
os.environ.setdefault("MICRODEPLOY_IMAGES_MAX_SIZE", "16G")
