"""``octo runs import``: runs made elsewhere (W&B exports, veRL, TRL, lighteval) as ordinary study folders.

``mapping`` (the typed YAML mapping and its presets), ``readers`` (one streaming reader per format),
``writer`` (one arm's metrics.jsonl), ``lighteval`` (results conversion), ``run`` (``import_runs``),
``cli`` (argparse only).
"""
