"""``zcscore bench``: rank-correlation fidelity and speed of proxies on NAS-Bench-201.

Modules: ``metrics`` (correlations and the NaN/-inf policy), ``scorefile`` (resumable long CSV),
``runner`` (scoring through the engine, optionally in worker processes), ``truth`` (ground-truth
accuracies), ``published`` (the papers' figures), ``report``/``plots`` (outputs), ``floors`` (speed
floors), ``compare`` (agreement between two score files) and ``cli``.
"""
