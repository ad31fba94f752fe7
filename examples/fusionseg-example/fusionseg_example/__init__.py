"""Fusion methods from outside the benchmark, to copy from: ``contrast`` (a rule, rules.py) and
``tinynet`` (a small trainable network, network.py). Each module registers its method with
``fusion.methods.register_method``; the package's entry points tell the benchmark where."""
