# Proximity pilot: IEC 62196-2 cable coding (Type 2) and the SAE J1772 latch button S3
# (Type 1). Pure logic: ohms in, cable ampacity in deci-amps out.

INVALID = const(0)  # no valid cable (open, short, or outside 60..4500 ohm)
BUTTON = const(-1)  # Type 1: the latch button S3 is pressed - the user is about to unplug

_MIN_OHM = const(60)
_MAX_OHM = const(4500)

# (lowest ohm of the band, ampacity dA), from the highest resistance down. A reading between
# two bands gets the lower rating: each band's floor extends down to the next band's top.
_T2_13A_LO = const(936)  # 13 A band 1100..2460, gap 936..1100 -> 13 A, above 2460 -> 13 A
_T2_20A_LO = const(308)  # 20 A band 400..936, gap 308..400 -> 20 A
_T2_32A_LO = const(140)  # 32 A band 164..308, gap 140..164 -> 32 A
# 63 A band 80..140; 60..80 is only next to the 63 A band, so it stays 63 A.


def type2_ampacity(ohms, phases=3):
    """Cable ampacity (dA) for a PP-PE resistance; INVALID outside 60..4500 ohm."""
    if ohms < _MIN_OHM or ohms > _MAX_OHM:
        return INVALID
    if ohms > _T2_13A_LO:
        return 130
    if ohms > _T2_20A_LO:
        return 200  # IEC 62196-2: 680 ohm codes 20 A (not 16 A)
    if ohms > _T2_32A_LO:
        return 320
    return 630 if phases == 3 else 700  # 100 ohm: 63 A three-phase, 70 A single-phase


# Type 1 plug: 150 ohm PP-PE; pressing S3 adds 330 ohm in series (~480 ohm).
_T1_LATCHED_LO = const(100)
_T1_LATCHED_HI = const(300)
_T1_BUTTON_HI = const(800)


def type1_state(ohms, cable_da):
    """Ampacity for a Type 1 plug: `cable_da` when latched, BUTTON while S3 is pressed."""
    if _T1_LATCHED_LO <= ohms <= _T1_LATCHED_HI:
        return cable_da
    if _T1_LATCHED_HI < ohms <= _T1_BUTTON_HI:
        return BUTTON
    return INVALID
