# OCPP 1.6 statuses and error codes of the session (firmware/charge/session.py re-exports
# them): the OCPP client reports them as they are.

# OCPP 1.6 ChargePointStatus
AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
SUSPENDED_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"

# OCPP 1.6 ChargePointErrorCode
NO_ERROR = "NoError"
GROUND_FAILURE = "GroundFailure"
EV_COMM = "EVCommunicationError"
POWER_SWITCH = "PowerSwitchFailure"
OVERCURRENT = "OverCurrentFailure"
OTHER = "OtherError"
INTERNAL = "InternalError"
LOCK_FAILURE = "ConnectorLockFailure"
