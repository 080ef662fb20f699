# The limit loop (docs/limits.md): every source of a current limit publishes it to
# loop.Limits (publish()), the only caller of ChargeController.set_limit; the pure arbiter
# (arbiter.py, dynamics.py, rules.py) decides the offer from every input and its age; the
# `limits` config section is checked in conf.py.
