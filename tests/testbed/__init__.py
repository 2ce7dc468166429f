"""The project's test bed: pytest fixtures over microdeploy.testbed (real Debian hosts booted with systemd).

The hosts themselves -- cached images, network namespaces, booting with
systemd-nspawn -- are a product feature, `microdeploy.testbed`, which
`microdeploy check` uses too; this package only adds what tests need on top:

- ``fixtures`` -- pytest fixtures (``host_image``, ``boot_host``, ``networked_hosts``, ...)
- ``online``   -- a fresh, unbooted root on the machine's network (apt and pip work inside)

In a test::

    def test_installs(boot_host, tmp_path):
        host = boot_host()                                  # running, removed at teardown
        host.copy_in(deb, "/root/pkg.deb")                  # not /tmp: a tmpfs inside
        host.run(["apt-get", "install", "-y", "/root/pkg.deb"])
        assert host.run(["systemctl", "is-active", "pkg"]).stdout == "active\\n"
"""
