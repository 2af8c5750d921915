"""The fixtures every test may ask for, registered from :mod:`support` (tests/support/);
helpers that are not fixtures are imported by name (``from support.netns import Lab``)."""

pytest_plugins = [
    "support.fixtures",
    "support.journal",
    "support.hubdb",
    "support.daemon",
    "support.hub",
]
