"""`make demo`: the main job of microdeploy, end to end, on an embedded example."""
