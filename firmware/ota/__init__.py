# Firmware updates (docs/ota.md): rsa (RSA-PSS signature check), bundle (the signed bundle:
# its header, manifest checks and streaming unpack into a slot), slots (A/B slots, the boot
# pointer with its trial flag, install, confirm and rollback).

BOOT_FILE = "ota_boot.json"  # the boot pointer (slots.py); none until the first update
STATUS_FILE = "ota_status.json"  # an update's outcome waiting to be told (updater.py)


class Lazy:
    """The charge point's UpdateFirmware handler until one is needed: updater.py (and what it
    imports) loads when the CSMS asks for an update, not at every boot (modules load from .mpy
    files into the heap). Nothing under way meanwhile: its status is Idle."""

    status = "Idle"

    def __init__(self, cp, board):
        self.cp = cp
        self.board = board

    def get(self):
        from firmware.ota.updater import Updater

        up = self.cp.updater = Updater(self.cp, self.board)
        return up

    def request(self, p):
        return self.get().request(p)

    async def after_boot(self):
        await self.get().after_boot()

    async def tell(self):  # TriggerMessage FirmwareStatusNotification
        await self.cp.rpc.call("FirmwareStatusNotification", {"status": "Idle"})
