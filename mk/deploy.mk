# Deploy to a board and talk to it (tools/deploy.py, docs/deploy.md):
#   make deploy BOARD=esp32_wallbox PORT=/dev/ttyUSB0 [CONFIG=my.json] [KEYS=ota_keys.json] [RESET=1] [FORCE=1]
#   make repl PORT=/dev/ttyUSB0
#   make diag PORT=/dev/ttyUSB0
.PHONY: deploy repl diag vboard
BOARD ?=
PORT ?=
DEPLOY_OPTS = $(if $(CONFIG),--config "$(CONFIG)") $(if $(RESET),--reset) $(if $(FORCE),--force) \
	$(if $(KEYS),--keys "$(KEYS)")

deploy: $(SETUP)
	$(PY) tools/deploy.py deploy --board "$(BOARD)" --port "$(PORT)" $(DEPLOY_OPTS)

repl: $(SETUP)
	$(PY) tools/deploy.py repl --port "$(PORT)"

diag: $(SETUP)
	$(PY) tools/deploy.py diag --port "$(PORT)"

# A virtual board for trying the above without hardware: PORT=build/vboard/ttyV0 BOARD=sim.
# A reset (make deploy ... RESET=1, Ctrl-D at its REPL) restarts it and runs main.py.
vboard: $(SETUP)
	$(PY) tools/deploy.py vboard --dir build/vboard
