"""The PyPI side of the change bridge: names, journal entries, the XML-RPC and RSS clients,
and the notification bodies. Pure library code: no Flask, no loop, no environment."""
