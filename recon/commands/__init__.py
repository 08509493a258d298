"""One module per CLI verb; each exposes ``register(subparsers)``.

``register`` adds the verb's parser and sets ``func`` to a callable taking the
parsed ``argparse.Namespace`` and returning an exit code.
"""
