"""The ``broker-hub`` console script: composes the web front and the workers into processes."""
