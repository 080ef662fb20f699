# Firmware updates (docs/ota.md): rsa (RSA-PSS signature check), bundle (the signed bundle:
# its header, manifest checks and streaming unpack into a slot), slots (A/B slots, the boot
# pointer with its trial flag, install, confirm and rollback).

BOOT_FILE = "ota_boot.json"  # the boot pointer (slots.py); none until the first update
