# The limit loop (docs/architecture.md): every source of a current limit publishes it here and
# one arbiter, the only caller of ChargeController.set_limit, decides the offer. Today a
# stand-in (standin.py) applies the lowest published limit; the arbiter of the limit-loop
# issue (fuse, PV, DSO, grid rules) replaces it behind the same publish() seam.
