"""octo: the common ground of the project (CLI, typed configs, manifests, offline assets, tiny models).

The stage packages (pipelines, midtrain, rl, eval) import only from here, never from each other.
"""

__version__ = "0.1.0"
