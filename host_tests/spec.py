"""The session's timings as the standard and the project's safety requirements give them.
Tests assert against these numbers, written here by hand, never against the constants of
the module under test: a constant changed in the firmware then fails the charge tests.

Sources: IEC 61851-1 Annex A and IEC 62955 (the values as open implementations tested
against them cite them: EVerest, Tinkerforge, SmartEVSE) and docs/safety.md (the project's
choices where the standard leaves a named value open: lock confirmation, RCM test
validity, cable debounce, overcurrent pause)."""

# IEC 61851-1 Annex A timing
OPEN_MS = 100  # C->B, unplug, E/F, pilot/diode fault, RCM trip: contactor open within
CLOSE_MS = 3000  # B->C (seq 4): contactor closed within
READY_HOLD_MS = 100  # B->C accepted once it held this long (spec: named, default 100 ms)
F_HOLD_MS = 300  # after a fault: -12 V (state F) at least this long
STOP_OPEN_MS = 6000  # EVSE stop (PWM off): open after this at the latest, even under load
RECLOSE_MS = 5000  # re-close spacing after leaving C (relay wear)
RECLOSE_ERROR_MS = 30000  # ... after an error
OFFER_CHANGE_MS = 5000  # the offered current increases at most once per 5 s
OC_TOLERANCE_MS = 7000  # EV may draw offer + 10 % this long
# Contactor mirror contact (IEC 62955 RDC-DD practice: 250 ms feedback, 10 ms debounce)
CLOSE_FB_MS = 250  # feedback timeout
FB_DEBOUNCE_MS = 10  # feedback debounce
# IEC 62955 RDC-DD self-test and the project's rules for it (docs/safety.md)
RCM_TRIP_MS = 1000  # the fault output must rise within this of the test input
RCM_CLEAR_MS = 1500  # ... and fall within this after the test input drops
RCM_TEST_VALID_MS = 10000  # a passed test counts for one closing, this long
RCM_RETEST_MS = 24 * 3600 * 1000  # continuous charging: a new self-test every 24 h
# docs/safety.md
DEBOUNCE_SAMPLES = 3  # a new pilot state must be seen in this many consecutive samples
OC_PAUSE_MS = 60000  # after the overcurrent tolerance: no offer this long
LOCK_MS = 1000  # the socket lock's switch must confirm within this
PP_DEBOUNCE_MS = 30  # a lost or changed cable must persist this long
