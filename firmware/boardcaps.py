# The board contract's optional part, probed in one place (docs/boards.md "The board object").
#
# A board object must have everything in REQUIRED (lock and led may be None). Everything in
# OPTIONAL it may lack: probe() gives each missing one its default
# (None, or the name's), once per board at boot, so that the firmware reads `board.NAME` and
# tests `is not None` instead of asking getattr/hasattr here and there. App, the charge
# controller, the meter roles, the card reader, the clock sources and the OCPP charge point
# call it on the board they are given (again is harmless).

# Read directly: a board without one of these does not run.
REQUIRED = ("pilot", "pilot_period_ms", "pp", "contactor", "rcm", "lock", "led", "watchdog",
            "reset")

# name: default when the board lacks it. docs/boards.md documents each (a test compares).
OPTIONAL = {
    "name": "wallbox",  # str: BootNotification's model, diag, messages
    "refuse_why": None,  # str: the board cannot measure safely, never offer (uncalibrated CP)
    "flash_write_ok": None,  # () -> bool: flash writes allowed now (persist's gate)
    "reset_cause": None,  # () -> "watchdog" or None: why the last run ended
    "net": None,  # (section) -> firmware.net.Net or None: the network link for OCPP
    "tasks": None,  # () -> [(name, factory)]: the board's own supervised tasks
    "start_reflex": None,  # (reflex): run the reflex outside the scheduler (IRQ, thread)
    "stop_reflex": None,  # (): stop it again
    "cp_high_mv": None,  # () -> mV: one CP sample of the high plateau, for the reflex
    "meter_reading": None,  # firmware.meter.Reading of the EV meter (roles fills it)
    "grid_reading": None,  # firmware.meter.Reading of the grid meter (roles fills it)
    "meter_polled": None,  # (task): called after every EV/grid meter poll (the simulator)
    "energy_backend": None,  # (name) -> store for an energy register without flash erase
    "meter_bus": None,  # (uart, baud, parity) -> (UART, DE pin): the RS485 bus
    "s0_pin": None,  # (role, imp_per_kwh) -> the S0 impulse input
    "s0_counter": None,  # (pin, active) -> (counter, None) or (None, why): hardware S0 count
    "ct_input": None,  # (role) -> dict: the CT inputs' burst and calibration
    "card_reader": None,  # (reader, bus) -> chip driver on a card reader header
    "cards": None,  # drivers.rfid.CardReader: presented cards (firmware/rfid.py fills it)
    "rtc": None,  # read_s()/write_s(t): a clock that runs while the firmware does not
    "ntp_s": None,  # (host) -> epoch seconds: one NTP question
    "wall_s": None,  # () -> epoch seconds: a clock that is always right (test rigs)
    "blocking_ok": None,  # () -> bool: a call may block the interpreter in C now
    "ocpp_keys": None,  # dict: OCPP configuration key values for this board
    "temperature_c": None,  # () -> deg C or None: the Temperature measurand, thermal derating
    "dso_relay": None,  # () -> True (dimmed) / False / None (signal lost): §14a control box
    "hw_rev": 1,  # int: the board's hardware revision (an update bundle's minimum hardware)
    "phase_switch": None,  # drivers.contactor.Contactor: the 1p/3p switch (L2/L3), its mirror
}

def probe(board):
    """Give `board` every optional attribute it lacks, with its default; returns the board."""
    for name, default in OPTIONAL.items():
        if not hasattr(board, name):
            setattr(board, name, default)
    return board
