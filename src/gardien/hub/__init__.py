"""gardien hub: the self-hosted shared blocklist (see docs/hub.md).

Its server side (``store``, ``api``, ``web``) needs the ``[hub]`` extra; ``model`` and
``client`` need nothing more than gardien itself, for the daemon's side.
"""
