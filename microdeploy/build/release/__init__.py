"""What a build makes: its settings, the version (project, git, CI) and the changelog."""
