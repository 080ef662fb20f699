# OCPP 1.6J client: link, RPC, charge-point logic and its persistent stores.
