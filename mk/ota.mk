# Firmware update bundles (tools/bundle.py, docs/ota.md):
#   make keys                       a signing key pair in keys/ (once)
#   make bundle [BOARD=sim] [MARCH=x64] [VERSION=...]   a signed bundle in build/ota/
.PHONY: keys bundle
MARCH ?= x64

keys: $(SETUP)
	$(PY) tools/bundle.py keys --dir keys

bundle: $(SETUP)
	$(PY) tools/bundle.py build --board "$(or $(BOARD),sim)" --march "$(MARCH)" \
		$(if $(VERSION),--version "$(VERSION)") --key keys/ota_sign.pem
